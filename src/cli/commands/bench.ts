/**
 * `adahessian bench`: time per training step of SGD, Adam, AdamW and AdaHessian with the
 * Hessian every 1..5 steps, on one model and batch size, in one run, as the paper's cost
 * table (Yao et al. 2020, Table 8: time relative to SGD and to Adam).
 *
 * Method: every configuration gets its own copy of the model (same seed) and warms up first
 * (compilation, allocation). Then rounds: in each round every configuration runs a window of
 * steps, in an order that rotates from round to round, so a drift in the machine's load hits
 * them all alike. The time per step is the median over rounds. AdaHessian's window is a
 * multiple of f, so each window holds the same share of Hessian steps (1 in f). The learning
 * rate is tiny for every optimizer (BENCH_LEARNING_RATE): the cost of a step does not depend on
 * it, and the weights, cycled over a few batches, must not diverge while they are timed.
 */
import { Command } from 'commander';
import * as tf from '@tensorflow/tfjs';
import type { BackendName } from '../../backends.js';
import { batches } from '../../data/index.js';
import { softmaxCrossEntropy } from '../../losses.js';
import { pathText, prepareBackend, type StepGraphChoice } from '../backend.js';
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
import { CliUsageError } from '../errors.js';
import { listOf, oneOf, positiveInteger } from '../options.js';
import { note, say, type CliIo } from '../output.js';
import { letSignalsIn } from '../signals.js';
import { startProgress } from '../progress.js';
import { median, roundUpToMultiple } from '../stats.js';
import { formatTable } from '../table.js';
import {
  buildModel,
  buildOptimizer,
  resolveTrainConfig,
  type TrainConfig,
  type TrainSettings,
} from '../train-config.js';
import { trainStep } from '../training.js';
import { stepGraphNotices } from '../step-graph-notice.js';

export const BENCH_OPTIMIZERS = ['sgd', 'adam', 'adamw', 'adahessian'] as const;
type BenchOptimizer = (typeof BENCH_OPTIMIZERS)[number];

/** The paper's measurements (ResNet20 on CIFAR-10, GPU), by f: time x SGD and x Adam. */
export const PAPER_COST: Record<number, { sgd: number; adam: number }> = {
  1: { sgd: 2.42, adam: 2.27 },
  2: { sgd: 1.71, adam: 1.64 },
  3: { sgd: 1.47, adam: 1.42 },
  4: { sgd: 1.36, adam: 1.32 },
  5: { sgd: 1.28, adam: 1.25 },
};

/** Small enough that no configuration diverges on a few cycled batches. */
export const BENCH_LEARNING_RATE = 1e-5;

/** Our targets for AdaHessian on the small CNN: at most this many times Adam's step, by f. */
export const TARGET_X_ADAM: Record<number, number> = { 1: 2.0, 5: 1.25 };

export interface BenchOptions {
  model?: string;
  dataset?: DatasetName;
  data?: string;
  seqLength?: number;
  batchSize?: number;
  /** Steps per timed window (rounded up to a multiple of f for AdaHessian; default 10). */
  steps?: number;
  /** Timed rounds (default 5). */
  rounds?: number;
  /** Untimed steps per configuration before the rounds (default 3, rounded up to a multiple of f). */
  warmup?: number;
  optimizers?: BenchOptimizer[];
  hessianEvery?: number[];
  backend?: BackendName;
  native?: boolean;
  /** --step-graphs (src/cli/backend.ts). */
  stepGraphs?: StepGraphChoice;
  /** --threads: ONNX Runtime's threads with the native kernels (src/cli/backend.ts). */
  threads?: number;
  seed?: number;
}

export interface BenchRow {
  name: string;
  optimizer: BenchOptimizer;
  hessianEvery: number | null;
  /** Median over rounds. */
  msPerStep: number;
  /** Each round's time per step. */
  rounds: number[];
  xSgd: number | null;
  xAdam: number | null;
  /** 1 + 1/f: one extra backward pass every f steps, relative to SGD. */
  theoryXSgd: number | null;
  paperXSgd: number | null;
  paperXAdam: number | null;
}

export interface BenchResult {
  model: string;
  dataset: string;
  batchSize: number;
  backend: string;
  native: boolean;
  stepGraphs: StepGraphChoice;
  /** ONNX Runtime's threads (null without the native kernels). */
  threads: number | null;
  stepsPerWindow: number;
  rounds: number;
  rows: BenchRow[];
  /** Our targets for AdaHessian vs Adam, and whether this run met them. */
  targets: {
    hessianEvery: number;
    maxXAdam: number;
    measuredXAdam: number | null;
    met: boolean | null;
  }[];
}

interface Config {
  name: string;
  optimizer: BenchOptimizer;
  hessianEvery: number | null;
  window: number;
  warmup: number;
  model: tf.LayersModel;
  opt: tf.Optimizer;
  vars: tf.Variable[];
}

export async function bench(options: BenchOptions, io: CliIo): Promise<BenchResult> {
  const steps = options.steps ?? 10;
  const rounds = options.rounds ?? 5;
  const warmup = options.warmup ?? 3;
  const optimizers = options.optimizers ?? [...BENCH_OPTIMIZERS];
  const fs = options.hessianEvery ?? [1, 2, 3, 4, 5];
  if (optimizers.length === 0) throw new CliUsageError('--optimizers: give at least one.');
  const settings: TrainSettings = {
    model: options.model ?? 'small-cnn',
    dataset: options.dataset ?? 'fashion-mnist-slice',
    data: options.data,
    seqLength: options.seqLength,
    batchSize: options.batchSize ?? 64,
    seed: options.seed ?? 1,
    backend: options.backend,
  };
  const base = resolveTrainConfig(settings);
  const path = await prepareBackend(
    options.backend,
    options.native,
    io,
    options.stepGraphs,
    options.threads,
  );
  base.backend = path.backend;
  // A few distinct batches, cycled, so the timing is of real steps on real data.
  const batchesPerCycle = 4;
  const data = loadDataset({
    ...base,
    trainSize: base.batchSize * batchesPerCycle,
    testSize: 1,
  });
  if (data.train.count < base.batchSize) {
    data.dispose();
    throw new CliUsageError(
      `--batch-size ${base.batchSize} is larger than the ${data.train.count} training examples available.`,
    );
  }
  const fixed = [...batches(data.train.x, data.train.y, base.batchSize, { dropRemainder: true })];
  const configs: Config[] = [];
  try {
    for (const optimizer of optimizers) {
      const variants: (number | null)[] = optimizer === 'adahessian' ? fs : [null];
      for (const f of variants) {
        const config: TrainConfig = resolveTrainConfig({
          ...settings,
          optimizer,
          lr: BENCH_LEARNING_RATE,
          ...(f != null ? { hessianEvery: f } : {}),
        });
        const model = buildModel(config, data.modelOptions);
        const opt = buildOptimizer(config);
        configs.push({
          name: f == null ? optimizer : `adahessian f=${f}`,
          optimizer,
          hessianEvery: f,
          window: roundUpToMultiple(steps, f ?? 1),
          warmup: roundUpToMultiple(warmup, f ?? 1),
          model,
          opt,
          vars: model.trainableWeights.map((w) => w.read() as tf.Variable),
        });
      }
    }
    let cursor = 0;
    const noticeStepGraphs = stepGraphNotices(io);
    const run = (c: Config, n: number): number => {
      const start = performance.now();
      for (let i = 0; i < n; i++) {
        const b = fixed[cursor++ % fixed.length]!;
        trainStep(c.model, c.opt, c.vars, b.x, b.y, softmaxCrossEntropy);
      }
      const ms = (performance.now() - start) / n;
      noticeStepGraphs();
      return ms;
    };
    note(
      io,
      `bench: ${configs.length} configurations, ${rounds} rounds of ~${steps} steps, batch ${base.batchSize}, ${base.model} on ${pathText(path)}`,
    );
    const progress = startProgress(io, {
      label: 'bench',
      total: configs.length * (rounds + 1),
      unit: 'window',
    });
    let done = 0;
    for (const c of configs) {
      run(c, c.warmup);
      progress.update(++done);
      await letSignalsIn(); // Ctrl-C stops a bench between windows
    }
    const times = new Map<Config, number[]>(configs.map((c) => [c, []]));
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < configs.length; k++) {
        const c = configs[(k + r) % configs.length]!;
        times.get(c)!.push(run(c, c.window));
        progress.update(++done);
        await letSignalsIn();
      }
    }
    progress.stop();
    const med = new Map(configs.map((c) => [c, median(times.get(c)!)]));
    const sgd = configs.find((c) => c.optimizer === 'sgd');
    const adam = configs.find((c) => c.optimizer === 'adam');
    const rows: BenchRow[] = configs.map((c) => {
      const ms = med.get(c)!;
      const f = c.hessianEvery;
      return {
        name: c.name,
        optimizer: c.optimizer,
        hessianEvery: f,
        msPerStep: ms,
        rounds: times.get(c)!,
        xSgd: sgd ? ms / med.get(sgd)! : null,
        xAdam: adam ? ms / med.get(adam)! : null,
        theoryXSgd: f != null ? 1 + 1 / f : c.optimizer === 'sgd' ? 1 : null,
        paperXSgd: f != null ? (PAPER_COST[f]?.sgd ?? null) : null,
        paperXAdam: f != null ? (PAPER_COST[f]?.adam ?? null) : null,
      };
    });
    const targets = (base.model === 'small-cnn' ? Object.entries(TARGET_X_ADAM) : []).map(
      ([fText, maxXAdam]) => {
        const f = Number(fText);
        const row = rows.find((r) => r.hessianEvery === f);
        const measured = row?.xAdam ?? null;
        return {
          hessianEvery: f,
          maxXAdam,
          measuredXAdam: measured,
          met: measured == null ? null : measured <= maxXAdam,
        };
      },
    );
    return {
      model: base.model,
      dataset: base.dataset,
      batchSize: base.batchSize,
      backend: base.backend,
      native: path.native,
      stepGraphs: path.stepGraphs,
      threads: path.threads,
      stepsPerWindow: steps,
      rounds,
      rows,
      targets,
    };
  } finally {
    for (const c of configs) {
      c.opt.dispose();
      c.model.dispose();
    }
    tf.dispose(fixed.flatMap((b) => [b.x, b.y]));
    data.dispose();
  }
}

export function benchTable(result: BenchResult): string {
  const rows = result.rows.map((r) => [
    r.name,
    r.msPerStep,
    r.xSgd,
    r.xAdam,
    r.theoryXSgd,
    r.paperXSgd,
    r.paperXAdam,
  ]);
  const lines = [
    `Time per step, ${result.model}, batch ${result.batchSize}, ${pathText(result)} (median of ${result.rounds} rounds)`,
    formatTable(
      ['optimizer', 'ms/step', 'x SGD', 'x Adam', 'theory x SGD', 'paper x SGD', 'paper x Adam'],
      rows,
      { digits: [undefined, 1, 2, 2, 2, 2, 2] },
    ),
    'paper: ResNet20 on CIFAR-10, one GPU (Yao et al. 2020); theory: 1 + 1/f gradient-pass equivalents.',
  ];
  for (const t of result.targets) {
    if (t.measuredXAdam == null) continue;
    lines.push(
      `target f=${t.hessianEvery}: AdaHessian <= ${t.maxXAdam.toFixed(2)}x Adam; measured ${t.measuredXAdam.toFixed(2)}x: ${t.met ? 'met' : 'not met'}`,
    );
  }
  return lines.join('\n');
}

interface BenchFlags extends OutputFlags {
  model?: string;
  dataset?: DatasetName;
  data?: string;
  batchSize?: number;
  steps?: number;
  rounds?: number;
  warmup?: number;
  optimizers?: BenchOptimizer[];
  hessianEvery?: number[];
  backend?: BackendName;
  native?: boolean;
  stepGraphs?: StepGraphChoice;
  threads?: number;
  seed?: number;
  seqLength?: number;
}

export function benchCommand(ctx: CliContext): Command {
  const cmd = new Command('bench')
    .summary(
      "time per step of sgd, adam, adamw and adahessian (f = 1..5), as the paper's cost table",
    )
    .description(
      "Time per training step of sgd, adam, adamw and adahessian with the Hessian every 1..5 steps on one model, measured in one run (warm-up, interleaved rounds, medians), printed as the paper's cost table (ratios to SGD and to Adam).",
    );
  addModelOption(cmd);
  addDataOptions(cmd, { sizes: false }); // it times four batches of --batch-size
  cmd
    .option('--batch-size <n>', 'examples per step (default: 64)', positiveInteger)
    .option('--steps <n>', 'steps per timed window (default: 10)', positiveInteger)
    .option('--rounds <n>', 'timed rounds; the median is reported (default: 5)', positiveInteger)
    .option('--warmup <n>', 'untimed steps per configuration first (default: 3)', positiveInteger)
    .option(
      '--optimizers <list>',
      `comma-separated, from ${BENCH_OPTIMIZERS.join(', ')} (default: all)`,
      listOf(oneOf(BENCH_OPTIMIZERS)),
    )
    .option(
      '--hessian-every <list>',
      'AdaHessian f values (default: 1,2,3,4,5)',
      listOf(positiveInteger),
    );
  addSeedOption(cmd);
  addBackendOption(cmd);
  addOutputOptions(cmd);
  cmd.addHelpText(
    'after',
    `
Examples:
  adahessian bench
  adahessian bench --no-native --rounds 7       (wasm, without ONNX Runtime)
  adahessian bench --model mlp --batch-size 128 --hessian-every 1,5 --json`,
  );
  cmd.action(async (flags: BenchFlags) => {
    const io = ctx.io(flags);
    const result = await bench(flags, io);
    if (io.json) io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else say(io, benchTable(result));
  });
  return cmd;
}
