/**
 * Training in the browser: the library's small CNN on a slice of the shipped Fashion-MNIST,
 * one model per optimizer (same initial weights, same batches), stepped in turn so the curves
 * grow side by side. Environment-free: it takes the images as bytes, so the page's worker and
 * the Node test run exactly this code.
 */
import * as tf from '@tensorflow/tfjs';
import {
  AdaHessian,
  batches,
  batchCount,
  buildSmallCnn,
  optimizerByName,
  softmaxCrossEntropy,
  toImageTensors,
  type ImageDataset,
} from '../../../src/index.js';

export type TrainOptimizerName = 'adam' | 'adahessian';
export const TRAIN_OPTIMIZERS: readonly TrainOptimizerName[] = ['adam', 'adahessian'];

export interface TrainSettings {
  /** Training images used, the first ones of the slice. */
  trainSize: number;
  /** Test images for accuracy, the first ones of the test slice. */
  testSize: number;
  batchSize: number;
  epochs: number;
  /** Evaluate test loss and accuracy every this many steps (and after the last). */
  evalEvery: number;
  /** Initial weights, batch order and AdaHessian's probes. */
  seed: number;
  learningRates: Record<TrainOptimizerName, number>;
  hessianEvery: number;
}

export const DEFAULT_TRAIN_SETTINGS: Readonly<TrainSettings> = {
  trainSize: 1000,
  testSize: 500,
  batchSize: 50,
  epochs: 2,
  evalEvery: 10,
  seed: 1,
  learningRates: { adam: 0.001, adahessian: 0.15 },
  hessianEvery: 1,
};

export function checkTrainSettings(
  s: TrainSettings,
  available: { train: number; test: number },
): string[] {
  const problems: string[] = [];
  const integer = (name: string, v: number, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max) {
      problems.push(`${name} must be an integer from ${min} to ${max}, got ${v}.`);
    }
  };
  integer('training images', s.trainSize, 1, available.train);
  integer('test images', s.testSize, 1, available.test);
  integer('batch size', s.batchSize, 1, 1000);
  integer('epochs', s.epochs, 1, 100);
  integer('evaluate every', s.evalEvery, 1, 100000);
  integer('seed', s.seed, 0, 0xffffffff);
  integer('hessianEvery', s.hessianEvery, 1, 100);
  for (const name of TRAIN_OPTIMIZERS) {
    const lr = s.learningRates[name];
    if (!(typeof lr === 'number' && Number.isFinite(lr) && lr > 0)) {
      problems.push(`the learning rate of ${name} must be a number > 0, got ${lr}.`);
    }
  }
  return problems;
}

export interface TrainCurve {
  /** Training loss of each step's batch (before the step). */
  losses: number[];
  /** Steps (1-based) at which the test set was evaluated, and what it gave. */
  evalSteps: number[];
  testLosses: number[];
  testAccuracies: number[];
  /** Wall-clock ms per step, one per step (display only; never compared). */
  msPerStep: number[];
}

export interface TrainProgress {
  step: number;
  totalSteps: number;
  curves: Record<TrainOptimizerName, TrainCurve>;
}

export interface TrainHooks {
  /** Called after every step of both models. */
  onProgress?: (p: TrainProgress) => void | Promise<void>;
  /** Checked before every step: true stops the run after the current step. */
  shouldStop?: () => boolean;
}

export interface TrainedModels {
  models: Record<TrainOptimizerName, tf.Sequential>;
  curves: Record<TrainOptimizerName, TrainCurve>;
  stopped: boolean;
  steps: number;
}

function optimizerFor(name: TrainOptimizerName, s: TrainSettings): tf.Optimizer {
  return name === 'adahessian'
    ? new AdaHessian({
        learningRate: s.learningRates.adahessian,
        hessianEvery: s.hessianEvery,
        seed: s.seed,
      })
    : optimizerByName('adam', s.learningRates.adam);
}

/** The first `count` images of a dataset as tensors in [0, 1] and one-hot labels. */
export function firstImages(d: ImageDataset, count: number): { x: tf.Tensor4D; y: tf.Tensor2D } {
  const pixels = d.height * d.width * d.channels;
  return toImageTensors(
    d.images.subarray(0, count * pixels),
    d.labels.subarray(0, count),
    count,
    d.height,
    d.width,
    { channels: d.channels },
  );
}

function variablesOf(model: tf.LayersModel): tf.Variable[] {
  return model.trainableWeights.map((w) => w.read() as tf.Variable);
}

function evaluate(
  model: tf.LayersModel,
  x: tf.Tensor,
  y: tf.Tensor,
): { loss: number; accuracy: number } {
  return tf.tidy(() => {
    const logits = model.apply(x, { training: false }) as tf.Tensor;
    const loss = softmaxCrossEntropy(y, logits).dataSync()[0]!;
    const correct = tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), tf.argMax(y, -1)), 'float32'));
    return { loss, accuracy: correct.dataSync()[0]! / x.shape[0]! };
  });
}

/**
 * Trains one small CNN per optimizer, in turns. The caller disposes the returned models
 * (`disposeModels`); they stay for the Hessian explorer.
 */
export async function trainModels(
  settings: TrainSettings,
  data: { train: ImageDataset; test: ImageDataset },
  hooks: TrainHooks = {},
): Promise<TrainedModels> {
  const problems = checkTrainSettings(settings, { train: data.train.count, test: data.test.count });
  if (problems.length > 0) throw new RangeError(problems[0]);
  const train = firstImages(data.train, settings.trainSize);
  const test = firstImages(data.test, settings.testSize);
  const models = {} as Record<TrainOptimizerName, tf.Sequential>;
  const optimizers = {} as Record<TrainOptimizerName, tf.Optimizer>;
  const curves = {} as Record<TrainOptimizerName, TrainCurve>;
  for (const name of TRAIN_OPTIMIZERS) {
    models[name] = buildSmallCnn({
      inputShape: [data.train.height, data.train.width, data.train.channels],
      seed: settings.seed,
    });
    optimizers[name] = optimizerFor(name, settings);
    curves[name] = { losses: [], evalSteps: [], testLosses: [], testAccuracies: [], msPerStep: [] };
  }
  const perEpoch = batchCount(settings.trainSize, settings.batchSize);
  const totalSteps = perEpoch * settings.epochs;
  let step = 0;
  let stopped = false;
  const evaluateAll = () => {
    for (const name of TRAIN_OPTIMIZERS) {
      const r = evaluate(models[name], test.x, test.y);
      curves[name].evalSteps.push(step);
      curves[name].testLosses.push(r.loss);
      curves[name].testAccuracies.push(r.accuracy);
    }
  };
  try {
    epochs: for (let epoch = 0; epoch < settings.epochs; epoch++) {
      for (const batch of batches(train.x, train.y, settings.batchSize, {
        shuffle: true,
        seed: settings.seed + epoch,
      })) {
        try {
          if (hooks.shouldStop?.()) {
            stopped = true;
            break epochs;
          }
          step++;
          for (const name of TRAIN_OPTIMIZERS) {
            const model = models[name];
            const started = performance.now();
            const cost = optimizers[name].minimize(
              () =>
                softmaxCrossEntropy(batch.y, model.apply(batch.x, { training: true }) as tf.Tensor),
              true,
              variablesOf(model),
            );
            const loss = cost!.dataSync()[0]!;
            cost!.dispose();
            curves[name].msPerStep.push(performance.now() - started);
            curves[name].losses.push(loss);
          }
          if (step % settings.evalEvery === 0 || step === totalSteps) evaluateAll();
        } finally {
          tf.dispose([batch.x, batch.y]);
        }
        await hooks.onProgress?.({ step, totalSteps, curves });
      }
    }
    const last = curves.adam.evalSteps.at(-1);
    if (step > 0 && last !== step) evaluateAll();
  } catch (e) {
    disposeModels(models);
    throw e;
  } finally {
    for (const name of TRAIN_OPTIMIZERS) optimizers[name]?.dispose();
    tf.dispose([train.x, train.y, test.x, test.y]);
  }
  return { models, curves, stopped, steps: step };
}

export function disposeModels(models: Partial<Record<TrainOptimizerName, tf.LayersModel>>): void {
  for (const m of Object.values(models)) m?.dispose();
}
