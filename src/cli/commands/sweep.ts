/**
 * `adahessian sweep`: robustness to the learning rate (each optimizer's usual rate scaled by
 * 0.5 ... 10, as in the paper's IWSLT14 experiment) and to AdaHessian's block size, on a small
 * run; tables, sweep.json and two SVG plots in --out.
 */
import { join } from 'node:path';
import { Command } from 'commander';
import type { BackendName } from '../../backends.js';
import { DEFAULT_LEARNING_RATES, type OptimizerName } from '../../optimizers/index.js';
import { writeFileAtomic } from '../atomic-file.js';
import { prepareBackend } from '../backend.js';
import {
  addBackendOption,
  addDataOptions,
  addModelOption,
  addOutputOptions,
  addSeedOption,
  type OutputFlags,
} from '../common-options.js';
import type { CliContext } from '../context.js';
import { loadDataset, type DatasetName } from '../datasets.js';
import { TrainingDivergedError } from '../errors.js';
import { linePlotSvg } from '../line-plot.js';
import { listOf, oneOf, positiveInteger, positiveNumber } from '../options.js';
import { note, say, type CliIo } from '../output.js';
import { startProgress } from '../progress.js';
import { formatTable } from '../table.js';
import { resolveTrainConfig, CLI_OPTIMIZERS, type TrainSettings } from '../train-config.js';
import { train } from '../training.js';

export const DEFAULT_SCALES = [0.5, 1, 2, 3, 4, 5, 6, 10];
export const DEFAULT_BLOCK_SIZES = [1, 2, 4, 8, 16, 32, 64, 128];
export const DEFAULT_SWEEP_OPTIMIZERS: OptimizerName[] = ['sgd', 'adam', 'adamw', 'adahessian'];

export interface SweepOptions {
  model?: string;
  dataset?: DatasetName;
  data?: string;
  trainSize?: number;
  testSize?: number;
  seqLength?: number;
  epochs?: number;
  batchSize?: number;
  optimizers?: OptimizerName[];
  scales?: number[];
  blockSizes?: number[];
  /** Skip the learning-rate part (--no-lr) or the block-size part (--no-block). */
  lr?: boolean;
  block?: boolean;
  backend?: BackendName;
  native?: boolean;
  seed?: number;
  /** Where sweep.json and the plots go (default out/sweep). */
  out?: string;
}

export interface SweepRun {
  optimizer: OptimizerName;
  lr: number;
  scale?: number;
  blockSize?: number;
  diverged: boolean;
  testAccuracy: number | null;
  testLoss: number | null;
  trainLoss: number | null;
}

export interface SweepResult {
  settings: Record<string, unknown>;
  learningRate: SweepRun[];
  blockSize: SweepRun[];
  files: { json?: string; lrPlot?: string; blockPlot?: string };
}

export async function sweep(options: SweepOptions, io: CliIo): Promise<SweepResult> {
  const optimizers = options.optimizers ?? DEFAULT_SWEEP_OPTIMIZERS;
  const scales = options.scales ?? DEFAULT_SCALES;
  const blockSizes = options.blockSizes ?? DEFAULT_BLOCK_SIZES;
  const out = options.out ?? join('out', 'sweep');
  const base: TrainSettings = {
    model: options.model ?? 'small-cnn',
    dataset: options.dataset ?? 'fashion-mnist-slice',
    data: options.data,
    trainSize: options.trainSize ?? 1024,
    testSize: options.testSize ?? 500,
    seqLength: options.seqLength,
    epochs: options.epochs ?? 1,
    batchSize: options.batchSize ?? 32,
    seed: options.seed ?? 1,
    backend: options.backend ?? 'wasm',
  };
  const checked = resolveTrainConfig(base);
  await prepareBackend(checked.backend, options.native);
  const data = loadDataset(checked);
  const plan: TrainSettings[] = [];
  if (options.lr !== false) {
    for (const optimizer of optimizers) {
      for (const scale of scales) {
        plan.push({ ...base, optimizer, lr: DEFAULT_LEARNING_RATES[optimizer] * scale });
      }
    }
  }
  if (options.block !== false) {
    for (const blockSize of blockSizes) plan.push({ ...base, optimizer: 'adahessian', blockSize });
  }
  const settings = { ...checked, optimizers, scales, blockSizes };
  note(
    io,
    `sweep: ${plan.length} runs of ${checked.epochs} epoch(s), ${checked.model} on ${data.train.count} examples`,
  );
  const progress = startProgress(io, { label: 'sweep', total: plan.length, unit: 'run' });
  const quiet: CliIo = { ...io, quiet: true };
  const learningRate: SweepRun[] = [];
  const blockSize: SweepRun[] = [];
  try {
    for (const [i, run] of plan.entries()) {
      const config = resolveTrainConfig(run);
      const record: SweepRun = {
        optimizer: config.optimizer,
        lr: config.lr,
        diverged: false,
        testAccuracy: null,
        testLoss: null,
        trainLoss: null,
      };
      if (run.blockSize !== undefined) record.blockSize = run.blockSize;
      else record.scale = config.lr / DEFAULT_LEARNING_RATES[config.optimizer];
      try {
        const result = await train({ ...run, preloaded: data }, quiet);
        const last = result.metrics.at(-1)!;
        const finite = [last.testLoss, last.trainLoss].every(Number.isFinite);
        record.diverged = !finite;
        record.testAccuracy = finite ? last.testAccuracy : null;
        record.testLoss = finite ? last.testLoss : null;
        record.trainLoss = finite ? last.trainLoss : null;
      } catch (e) {
        if (!(e instanceof TrainingDivergedError)) throw e;
        record.diverged = true;
      }
      (run.blockSize !== undefined ? blockSize : learningRate).push(record);
      progress.update(i + 1, record.testAccuracy != null ? { accuracy: record.testAccuracy } : {});
    }
  } finally {
    progress.stop();
    data.dispose();
  }
  const result: SweepResult = { settings, learningRate, blockSize, files: {} };
  result.files.json = join(out, 'sweep.json');
  if (learningRate.length > 0) {
    result.files.lrPlot = join(out, 'sweep-learning-rate.svg');
    writeFileAtomic(result.files.lrPlot, learningRatePlot(learningRate, settings.model));
  }
  if (blockSize.length > 0) {
    result.files.blockPlot = join(out, 'sweep-block-size.svg');
    writeFileAtomic(result.files.blockPlot, blockSizePlot(blockSize, settings.model));
  }
  writeFileAtomic(result.files.json, JSON.stringify(result, null, 2));
  return result;
}

const percent = (r: SweepRun) => (r.testAccuracy == null ? null : r.testAccuracy * 100);

export function learningRatePlot(runs: SweepRun[], model: string): string {
  const names = [...new Set(runs.map((r) => r.optimizer))];
  return linePlotSvg(
    names.map((name) => ({
      name,
      points: runs.filter((r) => r.optimizer === name).map((r) => ({ x: r.scale!, y: percent(r) })),
    })),
    {
      title: `Learning-rate robustness (${model})`,
      xLabel: "learning rate / the optimizer's usual one (x: diverged)",
      yLabel: 'test accuracy (%)',
      logX: true,
      yRange: [0, 100],
    },
  );
}

export function blockSizePlot(runs: SweepRun[], model: string): string {
  return linePlotSvg(
    [{ name: 'adahessian', points: runs.map((r) => ({ x: r.blockSize!, y: percent(r) })) }],
    {
      title: `Block-size robustness of AdaHessian (${model})`,
      xLabel: 'block size (dense weights; x: diverged)',
      yLabel: 'test accuracy (%)',
      logX: true,
      logBase: 2,
      yRange: [0, 100],
    },
  );
}

export function sweepTables(result: SweepResult): string {
  const lines: string[] = [];
  const cell = (r: SweepRun | undefined) =>
    r == null ? null : r.diverged ? 'diverged' : (r.testAccuracy! * 100).toFixed(1);
  if (result.learningRate.length > 0) {
    const scales = [...new Set(result.learningRate.map((r) => r.scale!))];
    const names = [...new Set(result.learningRate.map((r) => r.optimizer))];
    lines.push("Test accuracy (%) by learning-rate scale (1 = the optimizer's usual rate):");
    lines.push(
      formatTable(
        ['optimizer', 'base lr', ...scales.map((s) => `x${s}`)],
        names.map((n) => [
          n,
          String(DEFAULT_LEARNING_RATES[n]),
          ...scales.map((s) =>
            cell(result.learningRate.find((r) => r.optimizer === n && r.scale === s)),
          ),
        ]),
      ),
    );
  }
  if (result.blockSize.length > 0) {
    if (lines.length > 0) lines.push('');
    lines.push('AdaHessian by block size:');
    lines.push(
      formatTable(
        ['block size', 'test acc %', 'test loss'],
        result.blockSize.map((r) => [r.blockSize!, cell(r), r.testLoss]),
        { digits: [0, undefined, 4] },
      ),
    );
  }
  const files = Object.values(result.files);
  if (files.length > 0) lines.push('', ...files.map((f) => `wrote ${f}`));
  return lines.join('\n');
}

interface SweepFlags extends OutputFlags, SweepOptions {}

export function sweepCommand(ctx: CliContext): Command {
  const cmd = new Command('sweep')
    .summary('learning-rate and block-size robustness: tables and plots')
    .description(
      "Learning-rate robustness (each optimizer's usual rate scaled by 0.5, 1, 2, 3, 4, 5, 6, 10) and AdaHessian's block-size robustness, on a small but real run; prints tables and writes sweep.json and SVG plots to --out.",
    );
  addModelOption(cmd, 'small-cnn');
  addDataOptions(cmd);
  cmd
    .option('--epochs <n>', 'epochs per run (default: 1)', positiveInteger)
    .option('--batch-size <n>', 'examples per step (default: 32)', positiveInteger)
    .option(
      '--optimizers <list>',
      `comma-separated (default: ${DEFAULT_SWEEP_OPTIMIZERS.join(',')})`,
      listOf(oneOf(CLI_OPTIMIZERS)),
    )
    .option(
      '--scales <list>',
      `learning-rate scales (default: ${DEFAULT_SCALES.join(',')})`,
      listOf(positiveNumber),
    )
    .option(
      '--block-sizes <list>',
      `AdaHessian block sizes (default: ${DEFAULT_BLOCK_SIZES.join(',')})`,
      listOf(positiveInteger),
    )
    .option('--no-lr', 'skip the learning-rate sweep')
    .option('--no-block', 'skip the block-size sweep');
  addSeedOption(cmd);
  addBackendOption(cmd);
  cmd.option('--out <dir>', 'where sweep.json and the plots go (default: out/sweep)');
  addOutputOptions(cmd);
  cmd.addHelpText(
    'after',
    `
The defaults train the small CNN for one epoch on 1024 examples of the shipped slice
(--train-size 1024, --test-size 500): 40 short runs, about two minutes on two cores. Examples:
  adahessian sweep
  adahessian sweep --optimizers adam,adahessian --no-block --epochs 2
  adahessian sweep --model mlp --scales 0.5,1,2,4 --block-sizes 1,8,64`,
  );
  cmd.action(async (flags: SweepFlags) => {
    const io = ctx.io(flags);
    const result = await sweep(flags, io);
    if (io.json) io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else say(io, sweepTables(result));
  });
  return cmd;
}
