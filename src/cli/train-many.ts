/**
 * `adahessian train --seeds 1,2,3 --optimizers adam=0.001,adahessian`: one run per optimizer
 * and seed, on the same data with the same schedule, summarised as a table of mean +- std per
 * optimizer (the same rows with --json).
 *
 * With --out DIR every run is a complete `train --out` directory of its own, DIR/<run>/ (named
 * as sweep names its runs), so each one checkpoints, and resumes to the same weights, exactly
 * as a single run does. DIR/train-runs.json holds the plan; `train --resume DIR` reuses the
 * finished runs, continues the interrupted ones from their checkpoints and starts the rest.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isOptimizerName, type OptimizerName } from '../optimizers/index.js';
import { checkOutputDirectory, writeFileAtomic } from './atomic-file.js';
import { prepareBackend, type StepGraphChoice } from './backend.js';
import { CHECKPOINT_FILE, type EpochMetrics } from './checkpoint.js';
import { runKey } from './commands/sweep.js';
import { loadDataset, refuseLargerSizes, type LoadedDataset } from './datasets.js';
import { CliUsageError } from './errors.js';
import { distinctOptimizers, type OptimizerWithRate } from './options.js';
import { note, type CliIo } from './output.js';
import { acquireRunLock } from './run-lock.js';
import {
  divergedOutcome,
  outcomeOf,
  seedStatistics,
  type RunOutcome,
  type SeedStatistics,
} from './seed-stats.js';
import {
  ADAHESSIAN_ONLY,
  KERNEL_PATH_KEYS,
  kebab,
  optionText,
  resolveTrainConfig,
  TRAIN_SETTING_KEYS,
  type TrainConfig,
  type TrainSettings,
} from './train-config.js';
import { refuseForceOnResume, train, withRecordedThreads } from './training.js';

/** The plan of a set of runs, in --out DIR. */
export const TRAIN_RUNS_FILE = 'train-runs.json';

export interface TrainManyOptions extends TrainSettings {
  /** Optimizers, each with an optional base rate (default: --optimizer with --lr). */
  optimizers?: OptimizerWithRate[];
  /** One run per seed (default: --seed). */
  seeds?: number[];
  out?: string;
  /** A directory holding train-runs.json: finish its runs. */
  resume?: string;
  force?: boolean;
  checkpointEvery?: number;
  native?: boolean;
  stepGraphs?: StepGraphChoice;
  threads?: number;
  signal?: AbortSignal;
}

/** One run: one optimizer with one seed. */
export interface TrainManyRun extends RunOutcome {
  optimizer: OptimizerName;
  lr: number;
  seed: number;
  /** Its own `train --out` directory (with --out). */
  dir?: string;
  /** Finished by an earlier process (train --resume). */
  reused?: boolean;
}

/** One row of the table: an optimizer, summarised over its seeds. */
export interface TrainManyRow extends SeedStatistics {
  optimizer: OptimizerName;
  lr: number;
}

/** What every run shares (the data as loaded), and the optimizers and seeds. */
export interface TrainManySettings extends Pick<
  TrainConfig,
  | 'model'
  | 'dataset'
  | 'data'
  | 'seqLength'
  | 'epochs'
  | 'batchSize'
  | 'schedule'
  | 'warmupSteps'
  | 'backend'
> {
  trainSize: number;
  testSize: number;
  native: boolean;
  stepGraphs: StepGraphChoice;
  /** ONNX Runtime's threads (--threads; null without the native kernels). */
  threads: number | null;
  optimizers: OptimizerWithRate[];
  seeds: number[];
}

export interface TrainManyResult {
  settings: TrainManySettings;
  rows: TrainManyRow[];
  runs: TrainManyRun[];
  /** Stopped by Ctrl-C before every run finished (the rows cover the runs that did). */
  interrupted: boolean;
  files: { runs?: string };
}

/** What DIR/train-runs.json holds. */
interface Plan {
  /** The settings every run shares, as given (the backend resolved). */
  settings: TrainSettings;
  optimizers: OptimizerWithRate[];
  seeds: number[];
  checkpointEvery?: number;
}

/** Settings every run shares (some go only to the optimizers that take them, below). */
const SHARED_KEYS = TRAIN_SETTING_KEYS.filter(
  (k): k is Exclude<typeof k, 'optimizer' | 'lr' | 'seed'> =>
    k !== 'optimizer' && k !== 'lr' && k !== 'seed',
);
const WITH_WEIGHT_DECAY: readonly OptimizerName[] = ['adahessian', 'adamw'];

/** Whether `train` should run a set of runs (else one run, as ever). */
export function isTrainMany(options: TrainManyOptions): boolean {
  if (options.seeds !== undefined || options.optimizers !== undefined) return true;
  return options.resume !== undefined && holdsRunSet(options.resume);
}

function holdsRunSet(dir: string): boolean {
  return existsSync(join(dir, TRAIN_RUNS_FILE)) && !existsSync(join(dir, CHECKPOINT_FILE));
}

export async function trainMany(options: TrainManyOptions, io: CliIo): Promise<TrainManyResult> {
  const resuming = options.resume !== undefined;
  const plan = resuming ? resumedPlan(options) : newPlan(options);
  const configs = runSettings(plan).map((s) => resolveTrainConfig(s)); // all checked up front
  const out = options.resume ?? options.out;
  if (out !== undefined && !resuming) refuseOccupied(out, options.force === true);
  if (out !== undefined) checkOutputDirectory(out, resuming ? '--resume' : '--out');
  const lock =
    out !== undefined
      ? acquireRunLock(out, resuming ? '--resume' : '--out', (message) => note(io, message))
      : null;
  let data: LoadedDataset | undefined;
  try {
    // A resumed set keeps the kernels' path it started on (plan.settings, compared above).
    const path = await prepareBackend(
      plan.settings.backend,
      plan.settings.native ?? options.native,
      io,
      plan.settings.stepGraphs ?? options.stepGraphs,
      plan.settings.threads ?? options.threads,
    );
    const ran = {
      backend: path.backend,
      native: path.native,
      stepGraphs: path.stepGraphs,
      ...(path.threads !== null ? { threads: path.threads } : {}),
    };
    Object.assign(plan.settings, ran);
    for (const c of configs) Object.assign(c, ran);
    if (out !== undefined)
      writeFileAtomic(join(out, TRAIN_RUNS_FILE), JSON.stringify(plan, null, 2));
    const loaded = loadDataset(configs[0]!);
    refuseLargerSizes(configs[0]!, loaded); // disposes what it refuses
    data = loaded;
    const runs: TrainManyRun[] = [];
    let interrupted = false;
    for (const [i, config] of configs.entries()) {
      const dir = out !== undefined ? join(out, runKey(config)) : undefined;
      note(
        io,
        `run ${i + 1}/${configs.length}: ${config.optimizer} (lr ${config.lr}), seed ${config.seed}` +
          (dir !== undefined ? `, in ${dir}` : ''),
      );
      const run = await oneRun(config, plan, dir, data, options, io, resuming);
      if (run === 'interrupted') {
        interrupted = true;
        break;
      }
      runs.push(run);
    }
    const text = configs[0]!.dataset === 'text';
    const first = configs[0]!;
    const result: TrainManyResult = {
      settings: {
        model: first.model,
        dataset: first.dataset,
        ...(first.data !== undefined ? { data: first.data } : {}),
        trainSize: data.train.count,
        testSize: data.test.count,
        ...(first.seqLength !== undefined ? { seqLength: first.seqLength } : {}),
        epochs: first.epochs,
        batchSize: first.batchSize,
        schedule: first.schedule,
        warmupSteps: first.warmupSteps,
        backend: first.backend,
        native: path.native,
        stepGraphs: path.stepGraphs,
        threads: path.threads,
        optimizers: plan.optimizers,
        seeds: plan.seeds,
      },
      rows: summariseRuns(runs, text),
      runs,
      interrupted,
      files: out !== undefined ? { runs: join(out, TRAIN_RUNS_FILE) } : {},
    };
    if (interrupted) {
      note(
        io,
        out !== undefined
          ? `Stopped after ${runs.length} of ${configs.length} runs; continue with: adahessian train --resume ${out}`
          : `Stopped after ${runs.length} of ${configs.length} runs (no --out, so nothing was saved).`,
      );
    }
    return result;
  } finally {
    data?.dispose();
    lock?.release();
  }
}

async function oneRun(
  config: TrainConfig,
  plan: Plan,
  dir: string | undefined,
  data: LoadedDataset,
  options: TrainManyOptions,
  io: CliIo,
  resuming: boolean,
): Promise<TrainManyRun | 'interrupted'> {
  const common = {
    preloaded: data,
    signal: options.signal,
    native: options.native,
    stepGraphs: options.stepGraphs,
    threads: options.threads,
  };
  const base = { optimizer: config.optimizer, lr: config.lr, seed: config.seed };
  const where = dir !== undefined ? { dir } : {};
  // Only `--resume DIR` takes up what DIR holds: a new set (--force) starts every run over,
  // even where a run of the same name (optimizer, rate, seed) but other settings finished.
  const finished = resuming && dir !== undefined ? finishedMetrics(dir, config.epochs) : null;
  if (finished) return { ...base, ...outcomeOf({ metrics: finished }), ...where, reused: true };
  let outcome: RunOutcome;
  try {
    const resumable = resuming && dir !== undefined && existsSync(join(dir, CHECKPOINT_FILE));
    const result = await train(
      resumable
        ? { ...common, resume: dir, epochs: config.epochs }
        : {
            ...common,
            ...config,
            out: dir,
            force: options.force,
            checkpointEvery: plan.checkpointEvery,
          },
      io,
    );
    if (result.interrupted) return 'interrupted';
    outcome = outcomeOf(result);
  } catch (e) {
    outcome = divergedOutcome(e);
  }
  return { ...base, ...outcome, ...where };
}

/** The metrics of a run in `dir` that finished all `epochs`; null otherwise. */
function finishedMetrics(dir: string, epochs: number): EpochMetrics[] | null {
  try {
    const saved = JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8')) as {
      finished?: boolean;
      metrics?: EpochMetrics[];
    };
    return saved.finished === true && saved.metrics?.length === epochs ? saved.metrics : null;
  } catch {
    return null;
  }
}

function newPlan(options: TrainManyOptions): Plan {
  if (options.seed !== undefined && options.seeds !== undefined) {
    throw new CliUsageError('--seed and --seeds: give one of them.');
  }
  if (options.optimizers !== undefined && (options.optimizer ?? options.lr) !== undefined) {
    throw new CliUsageError(
      '--optimizers and --optimizer or --lr: give one (rates as --optimizers NAME=RATE,...).',
    );
  }
  if (options.seeds?.length === 0) throw new CliUsageError('--seeds lists no seed.');
  if (options.optimizers?.length === 0) throw new CliUsageError('--optimizers lists no optimizer.');
  const optimizers = distinctOptimizers(
    options.optimizers ?? [
      {
        optimizer: (options.optimizer ?? 'adahessian') as OptimizerName,
        ...(options.lr !== undefined ? { lr: options.lr } : {}),
      },
    ],
  );
  const settings: TrainSettings = {};
  for (const key of SHARED_KEYS) {
    if (options[key] !== undefined) (settings as Record<string, unknown>)[key] = options[key];
  }
  return {
    settings,
    optimizers,
    seeds: options.seeds ?? [options.seed ?? 1],
    ...(options.checkpointEvery !== undefined ? { checkpointEvery: options.checkpointEvery } : {}),
  };
}

/** DIR/train-runs.json's plan; settings given again must agree (only --epochs may change). */
function resumedPlan(options: TrainManyOptions): Plan {
  const dir = options.resume!;
  const fromPlan = (['optimizers', 'seeds', 'optimizer', 'lr', 'seed'] as const).filter(
    (k) => options[k] !== undefined,
  );
  const drop = fromPlan.map((k) => `--${kebab(k)}`).join(', ');
  if (options.out !== undefined && resolve(options.out) !== resolve(dir)) {
    // The runs' checkpoints are in DIR: they continue there (a single run may move to --out).
    throw new CliUsageError(
      `--out ${options.out} with --resume ${dir}: a set of runs continues in its own directory; drop --out.`,
    );
  }
  refuseForceOnResume(options);
  if (!holdsRunSet(dir)) {
    // Here because of --seeds or --optimizers: say what DIR holds rather than name a missing plan.
    if (!existsSync(dir)) throw new CliUsageError(`--resume ${dir} does not exist.`);
    if (existsSync(join(dir, CHECKPOINT_FILE))) {
      throw new CliUsageError(
        `--resume ${dir} continues the one run checkpointed there, with its settings; drop ${drop}.`,
      );
    }
    throw new CliUsageError(
      `--resume ${dir}: no ${CHECKPOINT_FILE} or ${TRAIN_RUNS_FILE} there (they are written to the --out directory of 'adahessian train').`,
    );
  }
  if (fromPlan.length > 0) {
    throw new CliUsageError(
      `--resume ${dir} takes the optimizers, rates and seeds from ${join(dir, TRAIN_RUNS_FILE)}; drop ${drop}.`,
    );
  }
  let plan: Plan;
  try {
    plan = JSON.parse(readFileSync(join(dir, TRAIN_RUNS_FILE), 'utf8')) as Plan;
    if (
      !Array.isArray(plan.seeds) ||
      !Array.isArray(plan.optimizers) ||
      !plan.optimizers.every((o) => isOptimizerName(o.optimizer)) ||
      typeof plan.settings !== 'object'
    ) {
      throw new Error('unexpected content');
    }
  } catch (e) {
    throw new CliUsageError(
      `--resume ${dir}: ${join(dir, TRAIN_RUNS_FILE)} cannot be read (${(e as Error).message}).`,
    );
  }
  plan.settings = withRecordedThreads(plan.settings);
  for (const key of SHARED_KEYS) {
    const given = options[key];
    if (given === undefined || key === 'epochs') continue;
    const saved = (plan.settings as Record<string, unknown>)[key];
    if (key === 'threads' && plan.settings.native === false) {
      throw new CliUsageError(
        `--threads ${String(given)}: the runs in ${dir} are without the native kernels, which ONNX Runtime's threads serve; ` +
          "resumed runs keep their kernels' path (drop --threads).",
      );
    }
    // A plan from before the kernels' path was recorded takes the one given.
    if (saved === undefined && KERNEL_PATH_KEYS.has(key)) continue;
    if (given !== saved) {
      throw new CliUsageError(
        `${optionText(key, given)} differs from the runs in ${dir} (${optionText(key, saved ?? 'not set', false)}); ` +
          'resumed runs keep their settings (only --epochs may change)' +
          (KERNEL_PATH_KEYS.has(key)
            ? ", and their kernels' path, which rounds differently."
            : '.'),
      );
    }
  }
  if (options.epochs !== undefined) plan.settings.epochs = options.epochs;
  return plan;
}

/** Each run's settings: optimizer by optimizer, seed by seed. */
function runSettings(plan: Plan): TrainSettings[] {
  const names = plan.optimizers.map((o) => o.optimizer);
  const anyAdaHessian = names.includes('adahessian');
  const anyDecay = names.some((n) => WITH_WEIGHT_DECAY.includes(n));
  return plan.optimizers.flatMap(({ optimizer, lr }) =>
    plan.seeds.map((seed) => {
      const s: TrainSettings = { ...plan.settings, optimizer, lr, seed };
      // An option for some of the listed optimizers goes to those; for none, it is refused.
      if (optimizer !== 'adahessian' && anyAdaHessian) for (const k of ADAHESSIAN_ONLY) delete s[k];
      if (!WITH_WEIGHT_DECAY.includes(optimizer) && anyDecay) delete s.weightDecay;
      return s;
    }),
  );
}

/** A fresh set of runs is not started over another one, or over a single run. */
function refuseOccupied(out: string, force: boolean): void {
  if (existsSync(join(out, CHECKPOINT_FILE))) {
    throw new CliUsageError(
      `--out ${out} holds a single run (${CHECKPOINT_FILE}); choose another directory for a set of runs.`,
    );
  }
  if (existsSync(join(out, TRAIN_RUNS_FILE)) && !force) {
    throw new CliUsageError(
      `--out ${out} holds a set of runs (${TRAIN_RUNS_FILE}); continue it with --resume ${out}, or pass --force to start over.`,
    );
  }
}

/** One row per optimizer, in the order given, over its seeds. */
export function summariseRuns(runs: TrainManyRun[], text: boolean): TrainManyRow[] {
  const byOptimizer = new Map<string, TrainManyRun[]>();
  for (const r of runs) byOptimizer.set(r.optimizer, [...(byOptimizer.get(r.optimizer) ?? []), r]);
  return [...byOptimizer.values()].map((group) => ({
    optimizer: group[0]!.optimizer,
    lr: group[0]!.lr,
    ...seedStatistics(group, text),
  }));
}
