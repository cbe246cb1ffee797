/**
 * The settings of a training run, their defaults and checks, and the optimizer and model they
 * describe. A checkpoint stores the resolved settings, so a resumed run rebuilds the same run.
 */
import type * as tf from '@tensorflow/tfjs';
import type { BackendName } from '../backends.js';
import { MODEL_NAMES, modelByName } from '../models/index.js';
import {
  DEFAULT_LEARNING_RATES,
  isOptimizerName,
  OPTIMIZER_NAMES,
  optimizerByName,
  type OptimizerName,
  type SpatialAveraging,
} from '../optimizers/index.js';
import { SCHEDULE_NAMES, scheduleFactor, type ScheduleName } from '../optimizers/learning-rate.js';
import { checkThreads, STEP_GRAPH_CHOICES, type StepGraphChoice } from './backend.js';
import { DATASET_NAMES, type DatasetName } from './datasets.js';
import { CliUsageError } from './errors.js';

/** The optimizers the command line offers (the list; 'momentum' is SGD with momentum). */
export const CLI_OPTIMIZERS = OPTIMIZER_NAMES;

export interface TrainConfig {
  model: string;
  dataset: DatasetName;
  /** --data: a directory (images) or a file (text). */
  data?: string;
  trainSize?: number;
  testSize?: number;
  seqLength?: number;
  optimizer: OptimizerName;
  /** The base learning rate; the schedule multiplies it at each step. */
  lr: number;
  /** Shape of the learning rate over the run (after the warm-up). */
  schedule: ScheduleName;
  /** Steps of linear warm-up of the learning rate (0: none). */
  warmupSteps: number;
  epochs: number;
  batchSize: number;
  /** AdaHessian: compute the Hessian diagonal every this many steps (the paper's f). */
  hessianEvery: number;
  /**
   * AdaHessian: compute D on every one of the first n steps, then every hessianEvery-th (absent:
   * none). Without it, f > 1 collapses in short runs (scripts/delayed-hessian-first-steps.ts).
   */
  hessianWarmupSteps?: number;
  /** AdaHessian: average D over blocks of this many entries of dense kernels and biases. */
  blockSize?: number;
  hessianPower: number;
  /** Decoupled weight decay (adahessian, adamw); absent: the optimizer's default. */
  weightDecay?: number;
  seed: number;
  backend: BackendName;
  /**
   * The kernels' path the run took: the native kernels on or off, and which steps replayed as
   * ONNX graphs. Each path rounds differently, so a resumed run takes the same one. Absent in
   * checkpoints written before it was recorded (and in settings that leave it to the backend).
   */
  native?: boolean;
  stepGraphs?: StepGraphChoice;
  /**
   * ONNX Runtime's threads with the native kernels (--threads), part of the path: more than one
   * translates some steps differently. Absent without the native kernels, and in checkpoints
   * written before it was recorded (those ran on 1).
   */
  threads?: number;
}

export type TrainSettings = Partial<TrainConfig>;

/** Every key of TrainConfig: what a checkpoint fixes and a resumed run may not change (but epochs). */
export const TRAIN_SETTING_KEYS = [
  'model',
  'dataset',
  'data',
  'trainSize',
  'testSize',
  'seqLength',
  'optimizer',
  'lr',
  'epochs',
  'batchSize',
  'hessianEvery',
  'blockSize',
  'hessianPower',
  'hessianWarmupSteps',
  'weightDecay',
  'schedule',
  'warmupSteps',
  'seed',
  'backend',
  'native',
  'stepGraphs',
  'threads',
] as const satisfies readonly (keyof TrainConfig)[];

export const TRAIN_DEFAULTS = {
  model: 'small-cnn',
  dataset: 'fashion-mnist-slice',
  optimizer: 'adahessian',
  epochs: 3,
  batchSize: 64,
  hessianEvery: 1,
  hessianPower: 1,
  schedule: 'constant',
  warmupSteps: 0,
  seed: 1,
  backend: 'wasm',
} as const;

/** Settings only AdaHessian takes. */
export const ADAHESSIAN_ONLY = [
  'hessianEvery',
  'blockSize',
  'hessianPower',
  'hessianWarmupSteps',
] as const;
const WITH_WEIGHT_DECAY: readonly OptimizerName[] = ['adahessian', 'adamw'];

/** Fills in the defaults and checks the combination; errors name the option as typed. */
export function resolveTrainConfig(settings: TrainSettings): TrainConfig {
  const optimizer = settings.optimizer ?? TRAIN_DEFAULTS.optimizer;
  if (!isOptimizerName(optimizer)) {
    throw new CliUsageError(
      `--optimizer '${optimizer}' is unknown; expected one of ${CLI_OPTIMIZERS.join(', ')}.`,
    );
  }
  const model = settings.model ?? TRAIN_DEFAULTS.model;
  if (!(MODEL_NAMES as readonly string[]).includes(model)) {
    throw new CliUsageError(
      `--model '${model}' is unknown; expected one of ${MODEL_NAMES.join(', ')}.`,
    );
  }
  const dataset = settings.dataset ?? TRAIN_DEFAULTS.dataset;
  if (!(DATASET_NAMES as readonly string[]).includes(dataset)) {
    throw new CliUsageError(
      `--dataset '${dataset}' is unknown; expected one of ${DATASET_NAMES.join(', ')}.`,
    );
  }
  if (settings.seqLength !== undefined && dataset !== 'text') {
    // Images have no sequences: refused rather than ignored, like AdaHessian's settings below.
    throw new CliUsageError(`--seq-length applies only to --dataset text.`);
  }
  if (optimizer !== 'adahessian') {
    for (const key of ADAHESSIAN_ONLY) {
      if (settings[key] !== undefined && settings[key] !== TRAIN_DEFAULTS[key as never]) {
        throw new CliUsageError(`--${kebab(key)} applies only to --optimizer adahessian.`);
      }
    }
  }
  if (settings.weightDecay && !WITH_WEIGHT_DECAY.includes(optimizer)) {
    throw new CliUsageError(
      `--weight-decay applies to ${WITH_WEIGHT_DECAY.join(' and ')} (decoupled decay); use one of them.`,
    );
  }
  const schedule = settings.schedule ?? TRAIN_DEFAULTS.schedule;
  if (!(SCHEDULE_NAMES as readonly string[]).includes(schedule)) {
    throw new CliUsageError(
      `--schedule '${schedule}' is unknown; expected one of ${SCHEDULE_NAMES.join(', ')}.`,
    );
  }
  const config: TrainConfig = {
    model,
    dataset: dataset as DatasetName,
    optimizer,
    lr: settings.lr ?? DEFAULT_LEARNING_RATES[optimizer],
    schedule,
    warmupSteps: settings.warmupSteps ?? TRAIN_DEFAULTS.warmupSteps,
    epochs: settings.epochs ?? TRAIN_DEFAULTS.epochs,
    batchSize: settings.batchSize ?? TRAIN_DEFAULTS.batchSize,
    hessianEvery: settings.hessianEvery ?? TRAIN_DEFAULTS.hessianEvery,
    hessianPower: settings.hessianPower ?? TRAIN_DEFAULTS.hessianPower,
    seed: settings.seed ?? TRAIN_DEFAULTS.seed,
    backend: settings.backend ?? TRAIN_DEFAULTS.backend,
  };
  for (const key of [
    'data',
    'trainSize',
    'testSize',
    'seqLength',
    'blockSize',
    'hessianWarmupSteps',
    'weightDecay',
    'native',
    'stepGraphs',
    'threads',
  ] as const) {
    if (settings[key] !== undefined)
      (config as unknown as Record<string, unknown>)[key] = settings[key];
  }
  checkNumbers(config);
  return config;
}

function checkNumbers(c: TrainConfig): void {
  const positiveInts: (keyof TrainConfig)[] = ['epochs', 'batchSize', 'hessianEvery'];
  for (const key of [...positiveInts, 'trainSize', 'testSize', 'seqLength', 'blockSize'] as const) {
    const v = c[key];
    if (v === undefined && !positiveInts.includes(key)) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      throw new CliUsageError(`--${kebab(key)} must be a positive integer, got ${String(v)}.`);
    }
  }
  if (
    c.hessianWarmupSteps !== undefined &&
    !(Number.isInteger(c.hessianWarmupSteps) && c.hessianWarmupSteps >= 0)
  ) {
    throw new CliUsageError(
      `--hessian-warmup-steps must be an integer >= 0, got ${String(c.hessianWarmupSteps)}.`,
    );
  }
  if (!Number.isInteger(c.warmupSteps) || c.warmupSteps < 0) {
    throw new CliUsageError(
      `--warmup-steps must be an integer >= 0, got ${String(c.warmupSteps)}.`,
    );
  }
  if (!(Number.isFinite(c.lr) && c.lr > 0)) {
    throw new CliUsageError(`--lr must be a finite number > 0, got ${c.lr}.`);
  }
  if (!(c.hessianPower > 0 && c.hessianPower <= 1)) {
    throw new CliUsageError(`--hessian-power must be in (0, 1], got ${c.hessianPower}.`);
  }
  if (c.weightDecay !== undefined && !(Number.isFinite(c.weightDecay) && c.weightDecay >= 0)) {
    throw new CliUsageError(`--weight-decay must be a finite number >= 0, got ${c.weightDecay}.`);
  }
  if (!Number.isInteger(c.seed) || c.seed < 0 || c.seed > 0xffffffff) {
    throw new CliUsageError(`--seed must be an integer in [0, 4294967295], got ${c.seed}.`);
  }
  if (c.native !== undefined && typeof c.native !== 'boolean') {
    throw new CliUsageError(`'native' must be true or false, got ${String(c.native)}.`);
  }
  if (c.stepGraphs !== undefined && !STEP_GRAPH_CHOICES.includes(c.stepGraphs)) {
    throw new CliUsageError(
      `--step-graphs '${String(c.stepGraphs)}' is unknown; expected one of ${STEP_GRAPH_CHOICES.join(', ')}.`,
    );
  }
  checkThreads(c.threads);
}

/**
 * Settings that choose the kernels' path (--native, --step-graphs, --threads): each rounds
 * differently.
 */
export const KERNEL_PATH_KEYS: ReadonlySet<string> = new Set(['native', 'stepGraphs', 'threads']);

/** A setting as typed: `--lr 0.1`, `--native`, `--no-native`; `flag: false`: the value alone. */
export function optionText(key: string, value: unknown, flag = true): string {
  if (key === 'native') return value ? '--native' : '--no-native';
  return flag ? `--${kebab(key)} ${String(value)}` : String(value);
}

export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/**
 * --block-size b: AdaHessian averages D over runs of b consecutive entries of dense kernels and
 * biases (ranks 1 and 2, the paper's block size for non-convolutional weights); conv kernels
 * keep the spatial averaging of the paper's image models. b = 1 leaves them alone.
 */
export function spatialAveragingFor(blockSize: number | undefined): SpatialAveraging {
  if (blockSize === undefined || blockSize === 1) return {};
  return { 1: { blockSize }, 2: { blockSize } };
}

export function buildOptimizer(config: TrainConfig): tf.Optimizer {
  return optimizerByName(config.optimizer, config.lr, {
    ...(config.weightDecay !== undefined ? { weightDecay: config.weightDecay } : {}),
    adahessian: {
      hessianEvery: config.hessianEvery,
      hessianPower: config.hessianPower,
      ...(config.hessianWarmupSteps !== undefined
        ? { hessianWarmupSteps: config.hessianWarmupSteps }
        : {}),
      spatialAveraging: spatialAveragingFor(config.blockSize),
      seed: config.seed,
    },
  });
}

/** The learning rate of 1-based step `step` of a run of `totalSteps` steps. */
export function scheduledLearningRate(
  config: TrainConfig,
  step: number,
  totalSteps: number,
): number {
  return (
    config.lr *
    scheduleFactor(config.schedule, step, { warmupSteps: config.warmupSteps, totalSteps })
  );
}

export function buildModel(
  config: TrainConfig,
  modelOptions: Record<string, unknown>,
): tf.LayersModel {
  try {
    return modelByName(config.model, { ...modelOptions, seed: config.seed } as never);
  } catch (e) {
    throw new CliUsageError(
      `--model ${config.model} does not fit --dataset ${config.dataset}: ${(e as Error).message}`,
    );
  }
}

/** The seed of epoch `epoch`'s data order (0-based), so every epoch has its own shuffle. */
export function dataOrderSeed(seed: number, epoch: number): number {
  return (Math.imul(seed, 0x9e3779b1) + epoch) >>> 0;
}
