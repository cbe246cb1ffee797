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
 * - the metrics and per-step losses so far.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeFileAtomic } from './atomic-file.js';
import { CliUsageError } from './errors.js';
import type { TrainConfig } from './train-config.js';
import {
  decodeTensor,
  encodeNamedTensors,
  encodeTensor,
  type EncodedTensor,
} from './tensor-codec.js';

export const CHECKPOINT_FILE = 'checkpoint.json';
const FORMAT = 'adahessian-train-checkpoint';
const VERSION = 1;

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
}

interface CheckpointFile extends Omit<TrainingState, never> {
  format: typeof FORMAT;
  version: number;
  savedAt: string;
  model: EncodedTensor[];
  optimizer: EncodedTensor[];
  optimizerExtra: EncodedTensor[];
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
  const file: CheckpointFile = {
    format: FORMAT,
    version: VERSION,
    savedAt: new Date().toISOString(),
    ...state,
    model: await encodeNamedTensors(
      weights.map((tensor, i) => ({ name: model.weights[i]!.originalName, tensor })),
    ),
    optimizer: await encodeOptimizerWeights(optimizer),
    optimizerExtra: await Promise.all(
      extraOptimizerVariables(optimizer).map(([key, v]) => encodeTensor(key, v)),
    ),
  };
  const path = join(dir, CHECKPOINT_FILE);
  writeFileAtomic(path, JSON.stringify(file));
  return path;
}

/**
 * getWeights() returns the live state variables plus new tensors it made for the occasion
 * (the step count, AdaHessian's counters); those new ones are ours to dispose.
 */
async function encodeOptimizerWeights(optimizer: tf.Optimizer): Promise<EncodedTensor[]> {
  const named = await optimizer.getWeights();
  try {
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

/** Reads `dir`/checkpoint.json; errors say what is wrong with it. */
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
  if (file?.format !== FORMAT) {
    throw new CliUsageError(`${path} is not an adahessian training checkpoint.`);
  }
  if (file.version !== VERSION) {
    throw new CliUsageError(
      `${path} has checkpoint version ${file.version}; this adahessian reads version ${VERSION}.`,
    );
  }
  const { config, epoch, stepInEpoch, globalStep, accumulator, metrics, stepLosses } = file;
  return {
    path,
    config,
    epoch,
    stepInEpoch,
    globalStep,
    accumulator,
    metrics,
    stepLosses,
    async restore(model, optimizer) {
      if (file.model.length !== model.weights.length) {
        throw new CliUsageError(
          `${path} holds ${file.model.length} model weights; the model '${config.model}' has ${model.weights.length}.`,
        );
      }
      const modelTensors = file.model.map((e) => decodeTensor(e, path));
      try {
        model.weights.forEach((w, i) => {
          if (!tf.util.arraysEqual(w.shape as number[], modelTensors[i]!.shape)) {
            throw new CliUsageError(
              `${path}: weight ${file.model[i]!.name} has shape [${modelTensors[i]!.shape}], the model's [${w.shape}].`,
            );
          }
        });
        model.setWeights(modelTensors);
      } finally {
        tf.dispose(modelTensors);
      }
      if (file.optimizer.length > 0) {
        const named = file.optimizer.map((e) => ({ name: e.name, tensor: decodeTensor(e, path) }));
        try {
          await optimizer.setWeights(named);
        } finally {
          tf.dispose(named.map((n) => n.tensor));
        }
      }
      const extras = new Map(extraOptimizerVariables(optimizer));
      for (const e of file.optimizerExtra) {
        const target = extras.get(e.name);
        if (target === undefined) continue;
        const value = decodeTensor(e, path);
        target.assign(value);
        value.dispose();
      }
    },
  };
}
