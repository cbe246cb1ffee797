/**
 * Training checkpoints: everything a run needs to continue exactly where it stopped, in one
 * JSON file written atomically (checkpoint.json in the output directory):
 *
 * - the resolved settings (so --resume rebuilds the same model, optimizer and data);
 * - the model's weights and the optimizer's state (getWeights(): for AdaHessian the step, the
 *   moments and the probe generator's state), bit for bit, plus optimizer variables that
 *   getWeights() leaves out but setWeights() would recompute differently (Adam's accumulated
 *   beta powers, which TF.js rebuilds with pow() instead of the running product);
 * - where the run is: epochs done, steps into the current epoch (the data order of an epoch
 *   follows from the seed and the epoch, see dataOrderSeed), and that epoch's running sums;
 * - the metrics and per-step losses so far;
 * - a SHA-256 of the saved tensors, so that a damaged file is refused on --resume.
 *
 * Loading validates every field (types, ranges, and that the counts agree with each other and
 * with the optimizer the settings name), so a damaged or edited file is refused with one line
 * instead of resuming into a wrong state. A checkpoint is never written from non-finite values.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { allFinite } from '../optimizers/non-finite.js';
import { NonFiniteError } from '../optimizers/index.js';
import { writeFileAtomic } from './atomic-file.js';
import { CliUsageError } from './errors.js';
import { resolveTrainConfig, type TrainConfig } from './train-config.js';
import {
  decodeTensor,
  encodeNamedTensors,
  encodeTensor,
  type EncodedTensor,
} from './tensor-codec.js';

export const CHECKPOINT_FILE = 'checkpoint.json';
const FORMAT = 'adahessian-train-checkpoint';
/** Version 2 added the checksum and checkpointEvery; version 1 files are still read. */
const VERSION = 2;
const READABLE_VERSIONS = [1, 2];

export interface EpochMetrics {
  /** 1-based. */
  epoch: number;
  steps: number;
  trainLoss: number;
  trainAccuracy: number;
  testLoss: number;
  testAccuracy: number;
  /** Seconds spent in training steps (evaluation and saving excluded). */
  trainSeconds: number;
  msPerStep: number;
  stepsPerSecond: number;
}

/** Running sums of the epoch in progress. */
export interface EpochAccumulator {
  steps: number;
  lossSum: number;
  correct: number;
  seen: number;
  seconds: number;
}

export interface TrainingState {
  config: TrainConfig;
  /** Epochs finished. */
  epoch: number;
  /** Steps done in epoch `epoch` (0-based), i.e. batches to skip on resume. */
  stepInEpoch: number;
  globalStep: number;
  accumulator: EpochAccumulator;
  metrics: EpochMetrics[];
  stepLosses: number[];
  /** --checkpoint-every of the run, which --resume keeps. */
  checkpointEvery?: number;
}

interface CheckpointFile extends Omit<TrainingState, never> {
  format: typeof FORMAT;
  version: number;
  savedAt: string;
  model: EncodedTensor[];
  optimizer: EncodedTensor[];
  optimizerExtra: EncodedTensor[];
  /** 'sha256:' + hex digest of model, optimizer and optimizerExtra (see tensorChecksum). */
  checksum: string;
}

/** A digest of every saved tensor's name, dtype, shape and bytes, in order. */
export function tensorChecksum(groups: EncodedTensor[][]): string {
  const hash = createHash('sha256');
  for (const group of groups) {
    hash.update(`[${group.length}]`);
    for (const e of group) hash.update(`${e.name}|${e.dtype}|${e.shape.join(',')}|${e.data};`);
  }
  return `sha256:${hash.digest('hex')}`;
}

export function emptyAccumulator(): EpochAccumulator {
  return { steps: 0, lossSum: 0, correct: 0, seen: 0, seconds: 0 };
}

/** Variables held directly by the optimizer object that getWeights() does not return. */
function extraOptimizerVariables(optimizer: tf.Optimizer): [string, tf.Variable][] {
  return Object.entries(optimizer).filter(
    (entry): entry is [string, tf.Variable] => entry[1] instanceof tf.Variable,
  );
}

export async function saveCheckpoint(
  dir: string,
  state: TrainingState,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
): Promise<string> {
  const weights = model.getWeights();
  const extras = extraOptimizerVariables(optimizer).map(([, v]) => v);
  const encodedOptimizer = await encodeOptimizerWeights(optimizer, (state) => {
    // The last guard against saving a diverged run over the last good checkpoint.
    if (!allFinite([...weights, ...extras, ...state.filter((t) => t.dtype === 'float32')])) {
      throw new NonFiniteError(
        'the weights or the optimizer state are NaN or infinite, so no checkpoint was written',
      );
    }
  });
  const encodedModel = await encodeNamedTensors(
    weights.map((tensor, i) => ({ name: model.weights[i]!.originalName, tensor })),
  );
  const encodedExtra = await Promise.all(
    extraOptimizerVariables(optimizer).map(([key, v]) => encodeTensor(key, v)),
  );
  const file: CheckpointFile = {
    format: FORMAT,
    version: VERSION,
    savedAt: new Date().toISOString(),
    ...state,
    model: encodedModel,
    optimizer: encodedOptimizer,
    optimizerExtra: encodedExtra,
    checksum: tensorChecksum([encodedModel, encodedOptimizer, encodedExtra]),
  };
  const path = join(dir, CHECKPOINT_FILE);
  writeFileAtomic(path, JSON.stringify(file));
  return path;
}

/**
 * getWeights() returns the live state variables plus new tensors it made for the occasion
 * (the step count, AdaHessian's counters); those new ones are ours to dispose.
 */
async function encodeOptimizerWeights(
  optimizer: tf.Optimizer,
  check: (state: tf.Tensor[]) => void,
): Promise<EncodedTensor[]> {
  const named = await optimizer.getWeights();
  try {
    check(named.map((n) => n.tensor));
    return await encodeNamedTensors(named);
  } finally {
    tf.dispose(named.map((n) => n.tensor).filter((t) => !(t instanceof tf.Variable)));
  }
}

export interface LoadedCheckpoint extends TrainingState {
  path: string;
  /** Restores the saved weights into a freshly built model and optimizer. */
  restore(model: tf.LayersModel, optimizer: tf.Optimizer): Promise<void>;
}

/** Reads `dir`/checkpoint.json; errors say what is wrong with it (one line, exit code 2). */
export function loadCheckpoint(dir: string): LoadedCheckpoint {
  if (!existsSync(dir)) throw new CliUsageError(`--resume ${dir} does not exist.`);
  const path = join(dir, CHECKPOINT_FILE);
  if (!existsSync(path)) {
    throw new CliUsageError(
      `--resume ${dir}: no ${CHECKPOINT_FILE} there (it is written to the --out directory of 'adahessian train').`,
    );
  }
  let file: CheckpointFile;
  try {
    file = JSON.parse(readFileSync(path, 'utf8')) as CheckpointFile;
  } catch (e) {
    throw new CliUsageError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (!isObject(file) || file.format !== FORMAT) {
    throw new CliUsageError(`${path} is not an adahessian training checkpoint.`);
  }
  if (!READABLE_VERSIONS.includes(file.version)) {
    throw new CliUsageError(
      `${path} has checkpoint version ${String(file.version)}; this adahessian reads version ${VERSION}.`,
    );
  }
  const config = validateFile(file, path);
  const { epoch, stepInEpoch, globalStep, accumulator, metrics, stepLosses } = file;
  return {
    path,
    config,
    epoch,
    stepInEpoch,
    globalStep,
    accumulator,
    metrics,
    stepLosses,
    ...(file.checkpointEvery !== undefined ? { checkpointEvery: file.checkpointEvery } : {}),
    async restore(model, optimizer) {
      checkModelTensors(file.model, model, config, path);
      checkOptimizerState(file, model, optimizer, config, path);
      const modelTensors = file.model.map((e) => decodeTensor(e, path));
      try {
        model.setWeights(modelTensors);
      } finally {
        tf.dispose(modelTensors);
      }
      const named = file.optimizer.map((e) => ({ name: e.name, tensor: decodeTensor(e, path) }));
      try {
        await optimizer.setWeights(named);
      } catch (e) {
        throw new CliUsageError(
          `${path}: its optimizer state does not fit a '${config.optimizer}' optimizer: ${(e as Error).message}`,
        );
      } finally {
        tf.dispose(named.map((n) => n.tensor));
      }
      const extras = new Map(extraOptimizerVariables(optimizer));
      for (const e of file.optimizerExtra) {
        const value = decodeTensor(e, path);
        extras.get(e.name)!.assign(value);
        value.dispose();
      }
    },
  };
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function isCount(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0;
}

function isFiniteNumber(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x);
}

/** Settings a checkpoint must hold (newer optional ones get their defaults). */
const REQUIRED_SETTINGS = [
  'model',
  'dataset',
  'optimizer',
  'lr',
  'epochs',
  'batchSize',
  'hessianEvery',
  'hessianPower',
  'seed',
  'backend',
] as const;

/** Every field of EpochMetrics, in metrics.csv's column order (checked on load, written as columns). */
export const EPOCH_METRIC_FIELDS = [
  'epoch',
  'steps',
  'trainLoss',
  'trainAccuracy',
  'testLoss',
  'testAccuracy',
  'trainSeconds',
  'msPerStep',
  'stepsPerSecond',
] as const;

/**
 * Checks every field of a parsed checkpoint and that they agree with each other; returns its
 * settings, resolved. Throws CliUsageError naming the field.
 */
function validateFile(file: CheckpointFile, path: string): TrainConfig {
  const bad = (problem: string) => new CliUsageError(`${path}: ${problem}`);
  if (!isObject(file.config)) throw bad("'config' is missing or not an object.");
  for (const key of REQUIRED_SETTINGS) {
    if (file.config[key] === undefined) throw bad(`'config.${key}' is missing.`);
  }
  let config: TrainConfig;
  try {
    config = resolveTrainConfig(file.config);
  } catch (e) {
    throw bad(`its settings are invalid: ${(e as Error).message}`);
  }
  const { epoch, stepInEpoch, globalStep, accumulator, metrics, stepLosses } = file;
  if (!isCount(epoch) || epoch > config.epochs) {
    throw bad(`'epoch' is ${String(epoch)}; expected an integer from 0 to ${config.epochs}.`);
  }
  if (!isCount(stepInEpoch)) throw bad(`'stepInEpoch' is ${String(stepInEpoch)}.`);
  if (epoch === config.epochs && stepInEpoch !== 0) {
    throw bad(`'stepInEpoch' is ${stepInEpoch} after the last epoch.`);
  }
  if (!isCount(globalStep)) throw bad(`'globalStep' is ${String(globalStep)}.`);
  if (!isObject(accumulator)) throw bad("'accumulator' is missing.");
  for (const key of ['steps', 'lossSum', 'correct', 'seen', 'seconds'] as const) {
    if (!isFiniteNumber(accumulator[key]) || accumulator[key] < 0) {
      throw bad(`'accumulator.${key}' is ${String(accumulator[key])}.`);
    }
  }
  if (accumulator.steps !== stepInEpoch) {
    throw bad(
      `'accumulator.steps' (${accumulator.steps}) differs from 'stepInEpoch' (${stepInEpoch}).`,
    );
  }
  if (!Array.isArray(metrics) || metrics.length !== epoch) {
    throw bad(`'metrics' should hold one entry per finished epoch (${epoch}).`);
  }
  metrics.forEach((m, i) => {
    if (!isObject(m)) throw bad(`'metrics[${i}]' is not an object.`);
    for (const key of EPOCH_METRIC_FIELDS) {
      if (typeof m[key] !== 'number') throw bad(`'metrics[${i}].${key}' is missing.`);
    }
    if (m.epoch !== i + 1 || !isCount(m.steps)) {
      throw bad(`'metrics[${i}]' is not epoch ${i + 1}.`);
    }
  });
  const stepsDone = metrics.reduce((sum, m) => sum + m.steps, 0) + stepInEpoch;
  if (globalStep !== stepsDone) {
    throw bad(`'globalStep' is ${globalStep}, but its epochs and position add up to ${stepsDone}.`);
  }
  if (!Array.isArray(stepLosses) || stepLosses.length !== globalStep) {
    throw bad(`'stepLosses' should hold one loss per step (${globalStep}).`);
  }
  if (!stepLosses.every(isFiniteNumber)) throw bad("'stepLosses' holds a non-number.");
  if (
    file.checkpointEvery !== undefined &&
    !(isCount(file.checkpointEvery) && file.checkpointEvery > 0)
  ) {
    throw bad(`'checkpointEvery' is ${String(file.checkpointEvery)}.`);
  }
  for (const key of ['model', 'optimizer', 'optimizerExtra'] as const) {
    const entries = file[key];
    if (!Array.isArray(entries)) throw bad(`'${key}' is missing.`);
    entries.forEach((e, i) => {
      const ok =
        isObject(e) &&
        typeof e.name === 'string' &&
        (e.dtype === 'float32' || e.dtype === 'int32') &&
        Array.isArray(e.shape) &&
        e.shape.every(isCount) &&
        typeof e.data === 'string';
      if (!ok) throw bad(`'${key}[${i}]' is not a saved tensor (name, dtype, shape, data).`);
    });
  }
  if (file.version >= 2) {
    if (typeof file.checksum !== 'string') throw bad("'checksum' is missing.");
    if (tensorChecksum([file.model, file.optimizer, file.optimizerExtra]) !== file.checksum) {
      throw bad(
        'its saved tensors do not match their checksum: the file is damaged (or was edited).',
      );
    }
  }
  return config;
}

function checkModelTensors(
  entries: EncodedTensor[],
  model: tf.LayersModel,
  config: TrainConfig,
  path: string,
): void {
  if (entries.length !== model.weights.length) {
    throw new CliUsageError(
      `${path} holds ${entries.length} model weights; the model '${config.model}' has ${model.weights.length}.`,
    );
  }
  model.weights.forEach((w, i) => {
    const e = entries[i]!;
    if (!tf.util.arraysEqual(w.shape as number[], e.shape) || e.dtype !== w.dtype) {
      throw new CliUsageError(
        `${path}: weight ${e.name} is ${e.dtype} [${e.shape}], the model's ${w.dtype} [${w.shape}].`,
      );
    }
  });
}

/**
 * What getWeights() returns for each optimizer after the first step: 'iter', the optimizer's
 * own scalars, then one tensor per slot and trainable variable (slot-major, named
 * '<variable>/<slot>'), plus variables held outside getWeights() (Adam's beta powers).
 */
const OPTIMIZER_STATE: Record<
  TrainConfig['optimizer'],
  { fixed: { name: string; shape: number[] }[]; slots: string[]; extra: string[] }
> = {
  adahessian: {
    fixed: [
      { name: 'hessianUpdates', shape: [] },
      { name: 'probeGenerator', shape: [4] },
    ],
    slots: ['m', 'v'],
    extra: [],
  },
  sgd: { fixed: [], slots: [], extra: [] },
  momentum: { fixed: [], slots: ['momentum'], extra: [] },
  adam: { fixed: [], slots: ['m', 'v'], extra: ['accBeta1', 'accBeta2'] },
  adamw: { fixed: [], slots: ['m', 'v'], extra: [] },
  adagrad: { fixed: [], slots: ['accumulator'], extra: [] },
  rmsprop: { fixed: [], slots: ['rms', 'momentum'], extra: [] },
};

/**
 * The saved optimizer state must be the one the settings' optimizer keeps, for this model,
 * after `globalStep` steps (an empty or mislabelled state would resume a different run).
 */
function checkOptimizerState(
  file: CheckpointFile,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
  config: TrainConfig,
  path: string,
): void {
  const layout = OPTIMIZER_STATE[config.optimizer];
  const vars = model.trainableWeights;
  const expected = [
    { name: 'iter', dtype: 'int32', shape: [] as number[] },
    ...layout.fixed.map((f) => ({ ...f, dtype: 'int32' })),
    ...layout.slots.flatMap((slot) =>
      vars.map((v) => ({ name: `/${slot}`, dtype: 'float32', shape: v.shape as number[] })),
    ),
  ];
  const saved = file.optimizer;
  const mismatch = (problem: string) =>
    new CliUsageError(
      `${path}: the optimizer state is not that of '${config.optimizer}' on this model after ${file.globalStep} steps: ${problem}`,
    );
  if (saved.length !== expected.length) {
    throw mismatch(`${saved.length} tensors, expected ${expected.length}.`);
  }
  expected.forEach((x, i) => {
    const e = saved[i]!;
    const nameOk = x.name.startsWith('/') ? e.name.endsWith(x.name) : e.name === x.name;
    if (!nameOk || e.dtype !== x.dtype || !tf.util.arraysEqual(e.shape, x.shape)) {
      throw mismatch(
        `entry ${i} is '${e.name}' ${e.dtype} [${e.shape}], expected ${x.name.startsWith('/') ? `'...${x.name}'` : `'${x.name}'`} ${x.dtype} [${x.shape}].`,
      );
    }
  });
  const iter = Buffer.from(saved[0]!.data, 'base64').readInt32LE(0);
  if (iter !== file.globalStep) {
    throw mismatch(`its step count is ${iter}, the checkpoint's position ${file.globalStep}.`);
  }
  const extras = new Map(extraOptimizerVariables(optimizer));
  const extraNames = file.optimizerExtra.map((e) => e.name);
  if (
    extraNames.length !== layout.extra.length ||
    !layout.extra.every((name) => extraNames.includes(name))
  ) {
    throw mismatch(
      `extra state [${extraNames.join(', ')}], expected [${layout.extra.join(', ')}].`,
    );
  }
  for (const e of file.optimizerExtra) {
    const target = extras.get(e.name);
    if (
      target === undefined ||
      e.dtype !== target.dtype ||
      !tf.util.arraysEqual(e.shape, target.shape)
    ) {
      throw mismatch(`extra state '${e.name}' does not fit.`);
    }
  }
}
