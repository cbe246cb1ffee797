/**
 * `adahessian sweep`: robustness to the learning rate (each optimizer's base rate scaled by
 * 0.5 ... 10, as in the paper's IWSLT14 experiment) and AdaHessian's ablations (block size,
 * Hessian power k, Hessian every f steps), each cell over one or more seeds; a table of
 * mean +- std per cell (the same rows with --json), sweep.json and SVG plots in --out.
 *
 * Every finished run is saved at once to --out/runs/, so a long grid can stop at any moment
 * (the process killed, the machine gone) and `--resume` reruns only the cells not yet done.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { Command } from 'commander';
import type { BackendName } from '../../backends.js';
import { DEFAULT_LEARNING_RATES, type OptimizerName } from '../../optimizers/index.js';
import type { ScheduleName } from '../../optimizers/learning-rate.js';
import { checkOutputDirectory, removeStaleTempFiles, writeFileAtomic } from '../atomic-file.js';
import { prepareBackend, type StepGraphChoice } from '../backend.js';
import {
  addBackendOption,
  addDataOptions,
  addModelOption,
  addOutputOptions,
  type OutputFlags,
} from '../common-options.js';
import type { CliContext } from '../context.js';
import { loadDataset, refuseLargerSizes, type DatasetName } from '../datasets.js';
import { CliUsageError } from '../errors.js';
import { linePlotSvg, type Series } from '../line-plot.js';
import {
  addScheduleOptions,
  distinctOptimizers,
  HESSIAN_WARMUP_HELP,
  hessianPower,
  listOf,
  nonEmptyPath,
  nonNegativeInteger,
  nonNegativeNumber,
  optimizerWithRate,
  positiveInteger,
  positiveNumber,
  seed,
  seedList,
  type OptimizerWithRate,
} from '../options.js';
import { note, say, type CliIo } from '../output.js';
import { acquireRunLock, type RunLock } from '../run-lock.js';
import { startProgress } from '../progress.js';
import {
  divergedOutcome,
  mainHeader,
  mainResult,
  outcomeOf,
  seedStatistics,
  type RunOutcome,
  type SeedStatistics,
} from '../seed-stats.js';
import { formatTable, type Cell } from '../table.js';
import { resolveTrainConfig, type TrainConfig, type TrainSettings } from '../train-config.js';
import { train, withRecordedThreads } from '../training.js';

export { mean, std } from '../seed-stats.js';

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
  /** Optimizers, each with an optional base rate (default: its usual one). */
  optimizers?: (OptimizerName | OptimizerWithRate)[];
  scales?: number[];
  blockSizes?: number[];
  /** AdaHessian ablation: Hessian powers k (default [1]). */
  hessianPowers?: number[];
  /** AdaHessian ablation: compute the Hessian every f steps (default [1]). */
  hessianEvery?: number[];
  /** AdaHessian: the Hessian on every one of the first n steps, in every AdaHessian run. */
  hessianWarmupSteps?: number;
  /** Skip the learning-rate part (--no-lr) or the AdaHessian ablation (--no-block). */
  lr?: boolean;
  block?: boolean;
  schedule?: ScheduleName;
  warmupSteps?: number;
  weightDecay?: number;
  backend?: BackendName;
  native?: boolean;
  /** --step-graphs (src/cli/backend.ts). */
  stepGraphs?: StepGraphChoice;
  /** --threads: ONNX Runtime's threads with the native kernels (src/cli/backend.ts). */
  threads?: number;
  /** One seed (--seed) or several (--seeds); each cell runs once per seed. */
  seed?: number;
  seeds?: number[];
  /** Where sweep.json, the plots and the finished runs go (default out/sweep). */
  out?: string;
  /** Reuse the finished runs in --out/runs whose settings match (skip those cells). */
  resume?: boolean;
}

export type SweepPart = 'learning-rate' | 'adahessian';

/** One training run: one cell of the grid with one seed. */
export interface SweepRun extends RunOutcome {
  part: SweepPart;
  optimizer: OptimizerName;
  /** The optimizer's base rate (the one the scales multiply). */
  baseLr: number;
  lr: number;
  scale?: number;
  blockSize?: number;
  hessianPower?: number;
  hessianEvery?: number;
  seed: number;
  /** Taken from an earlier process's --out/runs (--resume). */
  reused?: boolean;
}

/** One row of the table: a cell, summarised over its seeds (mean and sample std). */
export interface SweepRow extends SeedStatistics {
  part: SweepPart;
  optimizer: OptimizerName;
  baseLr: number;
  lr: number;
  scale: number | null;
  blockSize: number | null;
  hessianPower: number | null;
  hessianEvery: number | null;
}

export interface SweepResult {
  settings: Record<string, unknown>;
  /** The table's rows, as printed. */
  rows: SweepRow[];
  /** Every run, for the learning-rate part and the AdaHessian part. */
  learningRate: SweepRun[];
  blockSize: SweepRun[];
  files: { json?: string; lrPlot?: string; blockPlot?: string };
}

interface PlannedRun {
  part: SweepPart;
  settings: TrainSettings;
  baseLr: number;
  scale?: number;
}

/**
 * One sweep per --out at a time (the lock of run-lock.ts, as for `train --out`): two sweeps on
 * one directory would run the same cells twice and overwrite each other's sweep.json. The lock
 * is taken once the settings are checked and the directory made, and released however it ends.
 */
export async function sweep(options: SweepOptions, io: CliIo): Promise<SweepResult> {
  let lock: RunLock | undefined;
  try {
    return await sweepInLockedDirectory(options, io, (out) => {
      lock = acquireRunLock(out, '--out', (message) => note(io, message));
    });
  } finally {
    lock?.release();
  }
}

async function sweepInLockedDirectory(
  options: SweepOptions,
  io: CliIo,
  lockDirectory: (out: string) => void,
): Promise<SweepResult> {
  const optimizers = (options.optimizers ?? DEFAULT_SWEEP_OPTIMIZERS).map((o) =>
    typeof o === 'string' ? { optimizer: o } : o,
  );
  const scales = options.scales ?? DEFAULT_SCALES;
  const blockSizes = options.blockSizes ?? DEFAULT_BLOCK_SIZES;
  const powers = options.hessianPowers ?? [1];
  const fs = options.hessianEvery ?? [1];
  if (options.seed !== undefined && options.seeds !== undefined) {
    throw new CliUsageError('--seed and --seeds: give one of them.');
  }
  const seeds = options.seeds ?? [options.seed ?? 1];
  distinctOptimizers(optimizers);
  if (options.lr === false && options.block === false) {
    throw new CliUsageError('--no-lr and --no-block together leave nothing to run.');
  }
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
    schedule: options.schedule,
    warmupSteps: options.warmupSteps,
    backend: options.backend,
  };
  const plan: PlannedRun[] = [];
  if (options.lr !== false) {
    for (const { optimizer, lr } of optimizers) {
      const baseLr = lr ?? DEFAULT_LEARNING_RATES[optimizer];
      for (const scale of scales) {
        for (const s of seeds) {
          // 12 significant digits: 0.15 x 3 is 0.45, not 0.44999999999999996.
          const lr = Number((baseLr * scale).toPrecision(12));
          const settings: TrainSettings = { ...base, optimizer, lr, seed: s };
          if (options.weightDecay !== undefined && ['adamw', 'adahessian'].includes(optimizer)) {
            settings.weightDecay = options.weightDecay;
          }
          if (options.hessianWarmupSteps !== undefined && optimizer === 'adahessian') {
            settings.hessianWarmupSteps = options.hessianWarmupSteps;
          }
          plan.push({ part: 'learning-rate', settings, baseLr, scale });
        }
      }
    }
  }
  if (options.block !== false) {
    const given = optimizers.find((o) => o.optimizer === 'adahessian')?.lr;
    const baseLr = given ?? DEFAULT_LEARNING_RATES.adahessian;
    for (const f of fs) {
      for (const k of powers) {
        for (const blockSize of blockSizes) {
          for (const s of seeds) {
            const settings: TrainSettings = {
              ...base,
              optimizer: 'adahessian',
              lr: baseLr,
              blockSize,
              hessianPower: k,
              hessianEvery: f,
              seed: s,
            };
            if (options.weightDecay !== undefined) settings.weightDecay = options.weightDecay;
            if (options.hessianWarmupSteps !== undefined) {
              settings.hessianWarmupSteps = options.hessianWarmupSteps;
            }
            plan.push({ part: 'adahessian', settings, baseLr });
          }
        }
      }
    }
  }
  // Every setting is checked before any run starts (a bad one fails now, not hours in).
  const configs = plan.map((p) => resolveTrainConfig(p.settings));
  const checked = configs[0]!;
  checkOutputDirectory(out);
  lockDirectory(out);
  // Locked: temporary files here are a killed writer's (kill -9 between write and rename).
  removeStaleTempFiles(out);
  removeStaleTempFiles(join(out, 'runs'));
  // No --backend: the fastest path available (cpu + native kernels, else wasm).
  const path = await prepareBackend(
    options.backend,
    options.native,
    io,
    options.stepGraphs,
    options.threads,
  );
  for (const c of configs) c.backend = path.backend;
  for (const p of plan) p.settings.backend = path.backend;
  const data = loadDataset(checked);
  // The default size (1024) takes what there is; a size given is refused beyond it.
  refuseLargerSizes(options, data);
  const settings = {
    model: checked.model,
    dataset: checked.dataset,
    ...(checked.data !== undefined ? { data: checked.data } : {}),
    trainSize: data.train.count,
    testSize: data.test.count,
    ...(checked.seqLength !== undefined ? { seqLength: checked.seqLength } : {}),
    epochs: checked.epochs,
    batchSize: checked.batchSize,
    schedule: checked.schedule,
    warmupSteps: checked.warmupSteps,
    backend: checked.backend,
    native: path.native,
    stepGraphs: path.stepGraphs,
    threads: path.threads,
    optimizers,
    seeds,
    scales: options.lr !== false ? scales : [],
    blockSizes: options.block !== false ? blockSizes : [],
    hessianPowers: options.block !== false ? powers : [],
    hessianEvery: options.block !== false ? fs : [],
    weightDecay: options.weightDecay,
    ...(options.hessianWarmupSteps !== undefined
      ? { hessianWarmupSteps: options.hessianWarmupSteps }
      : {}),
  };
  note(
    io,
    `sweep: ${plan.length} runs of ${checked.epochs} epoch(s), ${checked.model} on ${data.train.count} examples, ${seeds.length} seed(s)`,
  );
  const progress = startProgress(io, { label: 'sweep', total: plan.length, unit: 'run' });
  const quiet: CliIo = { ...io, quiet: true };
  const runs: SweepRun[] = [];
  try {
    for (const [i, planned] of plan.entries()) {
      const config = configs[i]!;
      const file = join(out, 'runs', `${runKey(config)}.json`);
      // The kernels' path changes the numbers by float32 rounding (--native, --step-graphs,
      // --threads).
      const kernels = {
        native: path.native,
        stepGraphs: path.stepGraphs,
        ...(path.threads !== null ? { threads: path.threads } : {}),
      };
      const saved = options.resume ? savedRun(file, config, kernels) : null;
      let record: SweepRun;
      if (saved) {
        record = { ...saved, reused: true };
      } else {
        record = await oneRun(planned, config, data, quiet);
        writeFileAtomic(file, JSON.stringify({ config, kernels, run: record }, null, 2));
      }
      runs.push(record);
      progress.update(i + 1, record.testAccuracy != null ? { accuracy: record.testAccuracy } : {});
    }
  } finally {
    progress.stop();
    data.dispose();
  }
  const reused = runs.filter((r) => r.reused).length;
  if (reused > 0)
    note(io, `sweep: ${reused} of ${runs.length} runs reused from ${join(out, 'runs')}`);
  const learningRate = runs.filter((r) => r.part === 'learning-rate');
  const blockSize = runs.filter((r) => r.part === 'adahessian');
  const text = checked.dataset === 'text';
  const rows = summarise(runs, text);
  const result: SweepResult = { settings, rows, learningRate, blockSize, files: {} };
  result.files.json = join(out, 'sweep.json');
  if (learningRate.length > 0) {
    result.files.lrPlot = join(out, 'sweep-learning-rate.svg');
    writeFileAtomic(
      result.files.lrPlot,
      learningRatePlot(
        rows.filter((r) => r.part === 'learning-rate'),
        checked.model,
        text,
      ),
    );
  }
  if (blockSize.length > 0) {
    result.files.blockPlot = join(out, 'sweep-block-size.svg');
    writeFileAtomic(
      result.files.blockPlot,
      ablationPlot(
        rows.filter((r) => r.part === 'adahessian'),
        checked.model,
        text,
      ),
    );
  }
  writeFileAtomic(result.files.json, JSON.stringify(result, null, 2));
  return result;
}

async function oneRun(
  planned: PlannedRun,
  config: TrainConfig,
  data: ReturnType<typeof loadDataset>,
  quiet: CliIo,
): Promise<SweepRun> {
  let outcome: RunOutcome;
  try {
    outcome = outcomeOf(await train({ ...planned.settings, preloaded: data }, quiet));
  } catch (e) {
    outcome = divergedOutcome(e);
  }
  const record: SweepRun = {
    part: planned.part,
    optimizer: config.optimizer,
    baseLr: planned.baseLr,
    lr: config.lr,
    seed: config.seed,
    ...outcome,
  };
  if (planned.part === 'learning-rate') {
    record.scale = planned.scale!;
  } else {
    record.blockSize = config.blockSize ?? 1;
    record.hessianPower = config.hessianPower;
    record.hessianEvery = config.hessianEvery;
  }
  return record;
}

/** A file name for a run: readable, and distinct for distinct cells of one sweep. */
export function runKey(c: TrainConfig): string {
  const parts = [c.optimizer, `lr${c.lr}`, `seed${c.seed}`];
  if (c.optimizer === 'adahessian') {
    parts.push(`b${c.blockSize ?? 1}`, `k${c.hessianPower}`, `f${c.hessianEvery}`);
    // Only when set: the runs saved before this setting existed keep their names.
    if (c.hessianWarmupSteps !== undefined) parts.push(`w${c.hessianWarmupSteps}`);
  }
  return parts.join('-');
}

/**
 * The run saved in `file`, when it was made with exactly `config` on the same kernels' path
 * (files saved before the path was recorded are taken as made on it, and those saved with the
 * native kernels before their threads were, as made on one); otherwise null.
 */
function savedRun(file: string, config: TrainConfig, kernels: object): SweepRun | null {
  if (!existsSync(file)) return null;
  try {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as {
      config: unknown;
      kernels?: unknown;
      run: SweepRun;
    };
    const samePath =
      saved.kernels === undefined ||
      isDeepStrictEqual(withRecordedThreads(saved.kernels as TrainSettings), kernels);
    return samePath && JSON.stringify(saved.config) === JSON.stringify(config) ? saved.run : null;
  } catch {
    return null; // a file from an older version, or damaged: run the cell again
  }
}

/** Groups the runs by cell (everything but the seed), in the order the cells were planned. */
export function summarise(runs: SweepRun[], text: boolean): SweepRow[] {
  const cells = new Map<string, SweepRun[]>();
  for (const r of runs) {
    const key = JSON.stringify([
      r.part,
      r.optimizer,
      r.lr,
      r.scale,
      r.blockSize,
      r.hessianPower,
      r.hessianEvery,
    ]);
    cells.set(key, [...(cells.get(key) ?? []), r]);
  }
  return [...cells.values()].map((group) => {
    const r = group[0]!;
    return {
      part: r.part,
      optimizer: r.optimizer,
      baseLr: r.baseLr,
      lr: r.lr,
      scale: r.scale ?? null,
      blockSize: r.blockSize ?? null,
      hessianPower: r.hessianPower ?? null,
      hessianEvery: r.hessianEvery ?? null,
      ...seedStatistics(group, text),
    };
  });
}

/** The plotted quantity of a row: test accuracy in %, or bits per character for text. */
function plotted(r: SweepRow, text: boolean): { y: number | null; lo?: number; hi?: number } {
  const [m, s] = text
    ? [r.testBitsPerCharMean, r.testBitsPerCharStd]
    : [
        r.testAccuracyMean == null ? null : r.testAccuracyMean * 100,
        r.testAccuracyStd == null ? null : r.testAccuracyStd * 100,
      ];
  if (m == null) return { y: null };
  return r.seeds > 1 && s != null ? { y: m, lo: m - s, hi: m + s } : { y: m };
}

const Y_LABEL = (text: boolean, seeded: boolean) =>
  (text ? 'test bits per character' : 'test accuracy (%)') + (seeded ? ', mean +- std' : '');

export function learningRatePlot(rows: SweepRow[], model: string, text = false): string {
  const names = [...new Set(rows.map((r) => r.optimizer))];
  const seeded = rows.some((r) => r.seeds > 1);
  return linePlotSvg(
    names.map((name) => ({
      name,
      points: rows
        .filter((r) => r.optimizer === name)
        .map((r) => ({ x: r.scale!, ...plotted(r, text) })),
    })),
    {
      title: `Learning-rate robustness (${model})`,
      xLabel: 'learning rate / the base rate (x: diverged)',
      yLabel: Y_LABEL(text, seeded),
      logX: true,
      ...(text ? {} : { yRange: [0, 100] as [number, number] }),
    },
  );
}

/** AdaHessian's ablation: the y value against whichever of b, k, f takes the most values. */
export function ablationPlot(rows: SweepRow[], model: string, text = false): string {
  const dims = [
    { key: 'blockSize', label: 'block size (dense weights)', log: true },
    { key: 'hessianPower', label: 'Hessian power k', log: false },
    { key: 'hessianEvery', label: 'Hessian every f steps', log: false },
  ] as const;
  const count = (k: (typeof dims)[number]['key']) => new Set(rows.map((r) => r[k])).size;
  const axis = [...dims].sort((a, b) => count(b.key) - count(a.key))[0]!;
  const others = dims.filter((d) => d.key !== axis.key && count(d.key) > 1);
  const groups = new Map<string, SweepRow[]>();
  for (const r of rows) {
    const name =
      others.map((d) => `${d.key === 'hessianPower' ? 'k' : 'f'}=${r[d.key]}`).join(' ') ||
      'adahessian';
    groups.set(name, [...(groups.get(name) ?? []), r]);
  }
  const series: Series[] = [...groups.entries()].map(([name, group]) => ({
    name,
    points: group.map((r) => ({ x: r[axis.key]!, ...plotted(r, text) })),
  }));
  return linePlotSvg(series, {
    title: `AdaHessian by ${axis.label} (${model})`,
    xLabel: `${axis.label} (x: diverged)`,
    yLabel: Y_LABEL(
      text,
      rows.some((r) => r.seeds > 1),
    ),
    logX: axis.log,
    ...(axis.log ? { logBase: 2 as const } : {}),
    ...(text ? {} : { yRange: [0, 100] as [number, number] }),
  });
}

export function sweepTables(result: SweepResult): string {
  const lines: string[] = [];
  const text = result.settings.dataset === 'text';
  const lrRows = result.rows.filter((r) => r.part === 'learning-rate');
  const abRows = result.rows.filter((r) => r.part === 'adahessian');
  const main = (r: SweepRow) => mainResult(r, text);
  const seeds = (result.settings.seeds as number[]).join(',');
  const tail = (r: SweepRow): Cell[] => [r.testLossMean, r.trainLossMean, r.secondsPerEpochMean];
  const tailHeader = ['test loss', 'train loss', 's/epoch'];
  if (lrRows.length > 0) {
    const scales = [...new Set(lrRows.map((r) => r.scale!))];
    const names = [...new Set(lrRows.map((r) => r.optimizer))];
    lines.push(
      `${text ? 'Test bits per character' : 'Test accuracy (%)'} by learning-rate scale (1 = the base rate), mean +- std over seeds ${seeds}:`,
    );
    lines.push(
      formatTable(
        ['optimizer', 'base lr', ...scales.map((s) => `x${s}`)],
        names.map((n) => {
          const of = lrRows.filter((r) => r.optimizer === n);
          return [
            n,
            String(of[0]!.baseLr),
            ...scales.map((s) => {
              const r = of.find((x) => x.scale === s);
              return r ? main(r) : null;
            }),
          ];
        }),
      ),
    );
    lines.push('');
    lines.push(
      formatTable(
        ['optimizer', 'lr', 'scale', 'seeds', mainHeader(text), ...tailHeader],
        lrRows.map((r) => [r.optimizer, String(r.lr), r.scale, r.seeds, main(r), ...tail(r)]),
        { digits: [undefined, undefined, 2, 0, undefined, 4, 4, 1] },
      ),
    );
  }
  if (abRows.length > 0) {
    if (lines.length > 0) lines.push('');
    lines.push(
      `AdaHessian by block size, Hessian power k and Hessian every f steps (seeds ${seeds}):`,
    );
    lines.push(
      formatTable(
        ['block size', 'k', 'f', 'lr', 'seeds', mainHeader(text), ...tailHeader],
        abRows.map((r) => [
          r.blockSize,
          r.hessianPower,
          r.hessianEvery,
          String(r.lr),
          r.seeds,
          main(r),
          ...tail(r),
        ]),
        { digits: [0, 2, 0, undefined, 0, undefined, 4, 4, 1] },
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
    .summary('learning-rate robustness and AdaHessian ablations, over seeds: tables and plots')
    .description(
      "Learning-rate robustness (each optimizer's base rate scaled by 0.5, 1, 2, 3, 4, 5, 6, 10) and AdaHessian's ablations (block size, Hessian power, Hessian every f steps), each cell over one or more seeds, on a small but real run; prints mean +- std per cell and writes sweep.json, SVG plots and every finished run to --out (--resume skips the finished ones).",
    );
  addModelOption(cmd, 'small-cnn');
  addDataOptions(cmd);
  cmd
    .option('--epochs <n>', 'epochs per run (default: 1)', positiveInteger)
    .option('--batch-size <n>', 'examples per step (default: 32)', positiveInteger)
    .option(
      '--optimizers <list>',
      `comma-separated, each NAME or NAME=BASE_LR, e.g. adam=0.001,adahessian=0.15 (default: ${DEFAULT_SWEEP_OPTIMIZERS.join(',')} at their usual rates)`,
      listOf(optimizerWithRate),
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
    .option(
      '--hessian-powers <list>',
      'AdaHessian Hessian powers k (default: 1)',
      listOf(hessianPower),
    )
    .option(
      '--hessian-every <list>',
      'AdaHessian: Hessian every f steps, values of f (default: 1)',
      listOf(positiveInteger),
    )
    .option('--hessian-warmup-steps <n>', HESSIAN_WARMUP_HELP, nonNegativeInteger)
    .option('--no-lr', 'skip the learning-rate sweep')
    .option('--no-block', 'skip the AdaHessian ablation');
  addScheduleOptions(cmd);
  cmd
    .option(
      '--weight-decay <number>',
      'decoupled weight decay of adamw and adahessian',
      nonNegativeNumber,
    )
    .option('--seed <n>', 'one seed for every run (default: 1)', seed)
    .option('--seeds <list>', 'run every cell once per seed, e.g. 1,2,3 (mean +- std)', seedList);
  addBackendOption(cmd);
  cmd
    .option(
      '--out <dir>',
      'where sweep.json, the plots and runs/ go (default: out/sweep)',
      nonEmptyPath,
    )
    .option('--resume', 'reuse the finished runs in --out/runs with the same settings');
  addOutputOptions(cmd);
  cmd.addHelpText(
    'after',
    `
The defaults train the small CNN for one epoch on 1024 examples of the shipped slice
(--train-size 1024, --test-size 500): 40 short runs, about two minutes on two cores.
With --json, stdout holds the result, whose "rows" are the table's rows. Examples:
  adahessian sweep
  adahessian sweep --optimizers adam=0.001,adahessian=0.15 --no-block --seeds 1,2,3 --warmup-steps 32
  adahessian sweep --no-lr --block-sizes 1,4,16,64,128 --hessian-powers 0.5,1
  adahessian sweep --model mlp --scales 0.5,1,2,4 --block-sizes 1,8,64 --out out/s --resume`,
  );
  cmd.action(async (flags: SweepFlags) => {
    const io = ctx.io(flags);
    const result = await sweep(flags, io);
    if (io.json) io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else say(io, sweepTables(result));
  });
  return cmd;
}
