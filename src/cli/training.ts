/**
 * The training loop behind `adahessian train` and the demo: a seeded model, a seeded data order
 * per epoch, one optimizer.minimize() per batch, test loss and accuracy after each epoch,
 * checkpoints (at each epoch end and every --checkpoint-every steps) from which --resume
 * continues to the same weights bit for bit, and an orderly stop on an abort signal (Ctrl-C).
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { batchCount, batches } from '../data/index.js';
import { softmaxCrossEntropy } from '../losses.js';
import { NonFiniteError } from '../optimizers/index.js';
import { setLearningRate } from '../optimizers/learning-rate.js';
import { pathText, prepareBackend, threadsText, type StepGraphChoice } from './backend.js';
import { checkOutputDirectory, removeStaleTempFiles, writeFileAtomic } from './atomic-file.js';
import {
  CHECKPOINT_FILE,
  EPOCH_METRIC_FIELDS,
  emptyAccumulator,
  loadCheckpoint,
  saveCheckpoint,
  type EpochMetrics,
  type TrainingState,
} from './checkpoint.js';
import { loadDataset, refuseLargerSizes, type LoadedDataset, type Split } from './datasets.js';
import { CliUsageError, TrainingDivergedError } from './errors.js';
import { saveModel } from './model-io.js';
import { note, type CliIo } from './output.js';
import { acquireRunLock, type RunLock } from './run-lock.js';
import { startProgress } from './progress.js';
import { stepGraphNotices } from './step-graph-notice.js';
import { toCsv } from './table.js';
import {
  buildModel,
  buildOptimizer,
  dataOrderSeed,
  KERNEL_PATH_KEYS,
  optionText,
  resolveTrainConfig,
  scheduledLearningRate,
  TRAIN_SETTING_KEYS,
  type TrainConfig,
  type TrainSettings,
} from './train-config.js';
import { weightsFinite } from './finite-weights.js';

export interface TrainOptions extends TrainSettings {
  /** Where metrics, the final model and checkpoints go (nothing is written without it). */
  out?: string;
  /** A previous run's output directory to continue from. */
  resume?: string;
  /** Also checkpoint every this many steps (default: at epoch ends only; --resume keeps it). */
  checkpointEvery?: number;
  /** Replace a previous run's files in `out` (without it, such a directory is refused). */
  force?: boolean;
  /** Stop after the current step, checkpoint, and return with interrupted: true. */
  signal?: AbortSignal;
  /**
   * Called after every step (tests use it to interrupt at a chosen step; `ms`, the step's own
   * time as msPerStep counts it, lets a benchmark split the mean: bench/speed/demo-steps.ts).
   */
  onStep?: (info: {
    epoch: number;
    step: number;
    globalStep: number;
    loss: number;
    ms: number;
  }) => void;
  /** Keep the trained model in the result (the caller disposes it); default: dispose it. */
  keepModel?: boolean;
  /** Route heavy kernels through ONNX Runtime (--native). */
  native?: boolean;
  /** Which steps replay as ONNX graphs (--step-graphs; undefined: as they are). */
  stepGraphs?: StepGraphChoice;
  /** ONNX Runtime's threads with the native kernels (--threads; undefined: as they are). */
  threads?: number;
  /** Already-loaded data to train on instead of loading config.dataset (the demo shares it). */
  preloaded?: LoadedDataset;
}

export interface TrainResult {
  config: TrainConfig;
  metrics: EpochMetrics[];
  /** Training loss of every step, in order. */
  stepLosses: number[];
  globalStep: number;
  /** True when stopped by the signal before the last epoch finished. */
  interrupted: boolean;
  /** Files written (absent without --out). */
  files: { checkpoint?: string; metricsJson?: string; metricsCsv?: string; model?: string };
  /** Mean milliseconds per training step over the whole run. */
  msPerStep: number;
  /** The native kernels were on, and which steps replayed as ONNX graphs (--step-graphs). */
  native: boolean;
  stepGraphs: StepGraphChoice;
  /** ONNX Runtime's threads (--threads; null without the native kernels). */
  threads: number | null;
  model?: tf.LayersModel;
}

/** Options that may differ from a checkpoint's on --resume (the rest must match). */
const RESUMABLE_CHANGES = new Set(['epochs']);

export async function train(options: TrainOptions, io: CliIo): Promise<TrainResult> {
  refuseForceOnResume(options);
  // Bad settings are refused before --out is created or locked.
  if (options.resume === undefined) resolveTrainConfig(options);
  const out = options.out ?? options.resume;
  const claim = out !== undefined ? claimOutputDirectory(out, options, io) : undefined;
  try {
    return await runTraining(options, io, out, claim?.clearPreviousRun);
  } finally {
    claim?.lock.release();
  }
}

/**
 * --force replaces a previous run in --out. `--resume DIR` alone writes into DIR, the run it
 * continues, so --force would replace nothing (or, read as "start over", lose the checkpoint):
 * refused rather than ignored. With another --out it keeps its meaning there.
 */
export function refuseForceOnResume(options: {
  resume?: string;
  out?: string;
  force?: boolean;
}): void {
  if (!options.force || options.resume === undefined) return;
  if (options.out !== undefined && resolve(options.out) !== resolve(options.resume)) return;
  throw new CliUsageError(
    `--force with --resume ${options.resume}: resuming continues the run there and replaces nothing; ` +
      `drop --force to continue it, or start over with --out ${options.resume} --force.`,
  );
}

/**
 * Checks up front that `out` can be written to (creating it), takes its lock (one run per
 * directory), and refuses a directory that holds another run's files unless options.force;
 * clearPreviousRun removes them (called once the new run is ready to start, so a run refused
 * for bad data leaves them alone).
 */
function claimOutputDirectory(
  out: string,
  options: TrainOptions,
  io: CliIo,
): { lock: RunLock; clearPreviousRun: () => void } {
  const option = options.out !== undefined ? '--out' : '--resume';
  if (options.out === undefined && !existsSync(out)) {
    throw new CliUsageError(`--resume ${out} does not exist.`);
  }
  checkOutputDirectory(out, option);
  const lock = acquireRunLock(out, option, (message) => note(io, message));
  const resumingHere = options.resume !== undefined && resolve(options.resume) === resolve(out);
  const previous = resumingHere
    ? []
    : PREVIOUS_RUN_FILES.filter((name) => existsSync(join(out, name)));
  if (previous.length > 0 && !options.force) {
    lock.release();
    const listed = previous.join(', ');
    throw new CliUsageError(
      finishedRunIn(out)
        ? `--out ${out} holds a finished run (${listed}); pass --force to replace it, or choose another directory.`
        : `--out ${out} holds an unfinished run (${listed}); continue it with --resume ${out}, or pass --force to start over.`,
    );
  }
  const clearPreviousRun = () => {
    if (previous.length === 0) return;
    for (const name of previous) rmSync(join(out, name), { recursive: true, force: true });
    note(io, `--force: removed the previous run's ${previous.join(', ')} from ${out}.`);
    previous.length = 0;
  };
  return { lock, clearPreviousRun };
}

/** What a run writes to its --out directory. */
const PREVIOUS_RUN_FILES = [CHECKPOINT_FILE, 'metrics.json', 'metrics.csv', 'model'];

function finishedRunIn(dir: string): boolean {
  try {
    return JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8'))?.finished === true;
  } catch {
    return false;
  }
}

async function runTraining(
  options: TrainOptions,
  io: CliIo,
  out: string | undefined,
  clearPreviousRun: (() => void) | undefined,
): Promise<TrainResult> {
  const checkpoint = options.resume !== undefined ? loadCheckpoint(options.resume) : null;
  const config = checkpoint
    ? resumedConfig(checkpoint.config, options)
    : resolveTrainConfig(options);
  // Only temporary files of a dead writer can be here: the directory is locked.
  if (out !== undefined) removeStaleTempFiles(out);
  const checkpointEvery = options.checkpointEvery ?? checkpoint?.checkpointEvery;

  const path = await prepareKernelsPath(config, options);
  // What ran, so that a checkpoint records it and --resume takes the same path.
  config.native = path.native;
  config.stepGraphs = path.stepGraphs;
  if (path.threads !== null) config.threads = path.threads;
  else delete config.threads;
  const data = options.preloaded ?? loadDataset(config);
  if (options.preloaded === undefined) refuseLargerSizes(config, data);
  const model = buildModel(config, data.modelOptions);
  const optimizer = buildOptimizer(config);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const state: TrainingState = checkpoint
    ? {
        config,
        epoch: checkpoint.epoch,
        stepInEpoch: checkpoint.stepInEpoch,
        globalStep: checkpoint.globalStep,
        accumulator: checkpoint.accumulator,
        metrics: checkpoint.metrics,
        stepLosses: checkpoint.stepLosses,
        checkpointEvery,
      }
    : {
        config,
        epoch: 0,
        stepInEpoch: 0,
        globalStep: 0,
        accumulator: emptyAccumulator(),
        metrics: [],
        stepLosses: [],
        checkpointEvery,
      };
  const files: TrainResult['files'] = {};
  let interrupted = false;
  try {
    if (checkpoint) {
      await checkpoint.restore(model, optimizer);
      note(
        io,
        `Resuming ${checkpoint.path}: ${state.epoch} of ${config.epochs} epochs done` +
          (state.stepInEpoch > 0
            ? `, ${state.stepInEpoch} steps into epoch ${state.epoch + 1}`
            : '') +
          '.',
      );
      if (checkpoint.config.native === undefined) {
        // Written before the path was recorded: it may have run on another one.
        note(
          io,
          `${checkpoint.path} does not record the kernels' path it ran on; continuing on ${pathText(path)} ` +
            '(another path would differ from an uninterrupted run by float32 rounding).',
        );
      }
    }
    const stepsPerEpoch = batchCount(data.train.count, config.batchSize);
    if (state.stepInEpoch >= stepsPerEpoch) {
      // Skipping more batches than the epoch has would never finish the epoch.
      throw new CliUsageError(
        `--resume ${options.resume}: the checkpoint is ${state.stepInEpoch} steps into epoch ${state.epoch + 1}, ` +
          `but the data now gives ${stepsPerEpoch} steps per epoch (has the data changed?).`,
      );
    }
    clearPreviousRun?.();
    // AdaHessian refuses an update that would make the weights non-finite; other optimizers
    // are checked after their step, so that no checkpoint or model is written from such weights.
    // (By name: tf.Optimizer's Symbol.hasInstance makes every optimizer 'instanceof AdaHessian'.)
    const checkWeightsAfterStep = config.optimizer !== 'adahessian';
    const totalSteps = stepsPerEpoch * config.epochs;
    const lossFn = (y: tf.Tensor, logits: tf.Tensor) => softmaxCrossEntropy(y, logits);
    const save = async () => {
      if (out === undefined) return;
      try {
        files.checkpoint = await saveCheckpoint(out, state, model, optimizer);
      } catch (e) {
        throw divergence(e, `by step ${state.globalStep}`);
      }
    };

    const noticeStepGraphs = stepGraphNotices(io);
    while (state.epoch < config.epochs && !interrupted) {
      const epoch = state.epoch;
      const acc = state.accumulator;
      const progress = startProgress(io, {
        label: `epoch ${epoch + 1}/${config.epochs}`,
        total: stepsPerEpoch,
      });
      progress.update(state.stepInEpoch);
      let step = 0;
      const order = batches(data.train.x, data.train.y, config.batchSize, {
        shuffle: true,
        seed: dataOrderSeed(config.seed, epoch),
      });
      for (const batch of order) {
        if (step < state.stepInEpoch) {
          tf.dispose([batch.x, batch.y]);
          step++;
          continue;
        }
        const started = performance.now();
        let loss: number;
        let correct: number;
        try {
          // The schedule depends on the step number only, so a resumed run follows it exactly.
          setLearningRate(
            optimizer,
            scheduledLearningRate(config, state.globalStep + 1, totalSteps),
          );
          ({ loss, correct } = trainStep(model, optimizer, vars, batch.x, batch.y, lossFn));
        } catch (e) {
          throw divergence(e, `at epoch ${epoch + 1}, step ${step + 1}`);
        } finally {
          tf.dispose([batch.x, batch.y]);
        }
        noticeStepGraphs();
        if (!Number.isFinite(loss)) {
          throw divergence(
            new NonFiniteError(`the loss is ${loss}`),
            `at epoch ${epoch + 1}, step ${step + 1}`,
          );
        }
        if (checkWeightsAfterStep && !weightsFinite(vars)) {
          throw divergence(
            new NonFiniteError('the update made some weights NaN or infinite'),
            `at epoch ${epoch + 1}, step ${step + 1}`,
          );
        }
        const size = Math.min(config.batchSize, data.train.count - step * config.batchSize);
        const stepMs = performance.now() - started;
        acc.seconds += stepMs / 1000;
        acc.steps++;
        acc.lossSum += loss * size;
        acc.correct += correct;
        acc.seen += size * exampleUnits(data.train);
        step++;
        state.stepInEpoch = step;
        state.globalStep++;
        state.stepLosses.push(loss);
        progress.update(step, {
          loss: acc.lossSum / (acc.seen / exampleUnits(data.train)),
          accuracy: acc.correct / acc.seen,
        });
        options.onStep?.({
          epoch: epoch + 1,
          step,
          globalStep: state.globalStep,
          loss,
          ms: stepMs,
        });
        // Steps never wait for anything, so without this the SIGINT handler (Ctrl-C) would not
        // run until the whole run was over.
        await new Promise<void>((r) => setImmediate(r));
        const stopping = options.signal?.aborted === true;
        if (stopping && step < stepsPerEpoch) {
          interrupted = true;
          break;
        }
        if (checkpointEvery && state.globalStep % checkpointEvery === 0 && step < stepsPerEpoch) {
          await save();
        }
        if (stopping) interrupted = true;
      }
      progress.stop();
      if (!interrupted && state.stepInEpoch !== stepsPerEpoch) {
        throw new Error(
          `internal: epoch ${epoch + 1} ended after ${state.stepInEpoch} of ${stepsPerEpoch} steps.`,
        );
      }
      if (state.stepInEpoch === stepsPerEpoch) {
        const test = evaluate(model, data.test, lossFn);
        const metrics: EpochMetrics = {
          epoch: epoch + 1,
          steps: acc.steps,
          trainLoss: acc.lossSum / (acc.seen / exampleUnits(data.train)),
          trainAccuracy: acc.correct / acc.seen,
          testLoss: test.loss,
          testAccuracy: test.accuracy,
          trainSeconds: acc.seconds,
          msPerStep: (acc.seconds * 1000) / acc.steps,
          stepsPerSecond: acc.steps / acc.seconds,
        };
        state.metrics.push(metrics);
        state.epoch++;
        state.stepInEpoch = 0;
        state.accumulator = emptyAccumulator();
        note(io, epochLine(metrics, config.epochs));
        if (out !== undefined) Object.assign(files, writeMetrics(out, state, interrupted));
      }
      await save();
    }
    if (state.epoch >= config.epochs) interrupted = false;
    if (interrupted) {
      note(
        io,
        out !== undefined
          ? `Stopped at step ${state.globalStep}; checkpoint saved. Continue with: adahessian train --resume ${out}`
          : `Stopped at step ${state.globalStep} (no --out, so nothing was saved).`,
      );
    } else if (out !== undefined) {
      const modelDir = join(out, 'model');
      await saveModel(model, modelDir, {
        trainedBy: 'adahessian train',
        config,
        finalMetrics: state.metrics.at(-1) ?? null,
      });
      files.model = join(modelDir, 'model.json');
      Object.assign(files, writeMetrics(out, state, interrupted));
    }
    const seconds =
      state.metrics.reduce((s, m) => s + m.trainSeconds, 0) + state.accumulator.seconds;
    const steps = state.metrics.reduce((s, m) => s + m.steps, 0) + state.accumulator.steps;
    const result: TrainResult = {
      config,
      metrics: state.metrics,
      stepLosses: state.stepLosses,
      globalStep: state.globalStep,
      interrupted,
      files,
      msPerStep: steps > 0 ? (seconds * 1000) / steps : NaN,
      native: path.native,
      stepGraphs: path.stepGraphs,
      threads: path.threads,
    };
    if (options.keepModel) result.model = model;
    return result;
  } finally {
    optimizer.dispose();
    if (!options.keepModel) model.dispose();
    if (options.preloaded === undefined) data.dispose();
  }
}

/**
 * One optimizer step; returns the batch loss and how many predictions were right (counted on
 * the step's own forward pass, off the gradient path, so it costs no extra forward pass).
 */
export function trainStep(
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
  vars: tf.Variable[],
  x: tf.Tensor,
  y: tf.Tensor,
  lossFn: (y: tf.Tensor, logits: tf.Tensor) => tf.Scalar,
): { loss: number; correct: number } {
  let correct: tf.Scalar | null = null;
  let cost: tf.Scalar | null = null;
  try {
    // Inside the try: a refused step (it throws) must not leak the kept count either.
    cost = optimizer.minimize(
      () => {
        const logits = model.apply(x, { training: true }) as tf.Tensor;
        const count = tf.keep(countCorrect(logits, y));
        correct?.dispose();
        correct = count;
        return lossFn(y, logits);
      },
      true,
      vars,
    );
    return {
      loss: cost!.dataSync()[0]!,
      correct: correct ? (correct as tf.Scalar).dataSync()[0]! : 0,
    };
  } finally {
    cost?.dispose();
    (correct as tf.Scalar | null)?.dispose();
  }
}

/** Predictions whose arg-max matches the label's (per example, or per token for sequences). */
export function countCorrect(logits: tf.Tensor, y: tf.Tensor): tf.Scalar {
  return tf.tidy(() =>
    tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), tf.argMax(y, -1)), 'float32')),
  );
}

/** Predictions per example: 1 for images, the sequence length for text. */
function exampleUnits(split: Split): number {
  return split.y.shape.slice(1, -1).reduce((a, b) => a * b, 1);
}

/** Mean loss and accuracy over a split, in inference mode, in batches. */
export function evaluate(
  model: tf.LayersModel,
  split: Split,
  lossFn: (y: tf.Tensor, logits: tf.Tensor) => tf.Scalar,
  batchSize = 250,
): { loss: number; accuracy: number } {
  let lossSum = 0;
  let correct = 0;
  for (const b of batches(split.x, split.y, batchSize)) {
    const [l, c] = tf.tidy(() => {
      const logits = model.apply(b.x, { training: false }) as tf.Tensor;
      return [lossFn(b.y, logits).dataSync()[0]!, countCorrect(logits, b.y).dataSync()[0]!];
    });
    lossSum += l * b.x.shape[0]!;
    correct += c;
    tf.dispose([b.x, b.y]);
  }
  return { loss: lossSum / split.count, accuracy: correct / (split.count * exampleUnits(split)) };
}

/** A NonFiniteError as the command line reports it; `where` e.g. "at epoch 2, step 3". */
function divergence(e: unknown, where: string): unknown {
  if (e instanceof NonFiniteError) {
    return new TrainingDivergedError(
      `Training diverged ${where}: ${e.message.replace(/\.$/, '')}. ` +
        'The last checkpoint (if any) is kept. Try a smaller --lr.',
    );
  }
  return e;
}

function epochLine(m: EpochMetrics, epochs: number): string {
  return (
    `epoch ${m.epoch}/${epochs}  train loss ${m.trainLoss.toFixed(4)} acc ${(m.trainAccuracy * 100).toFixed(1)}%` +
    `  test loss ${m.testLoss.toFixed(4)} acc ${(m.testAccuracy * 100).toFixed(1)}%` +
    `  ${m.msPerStep.toFixed(1)} ms/step`
  );
}

function writeMetrics(
  out: string,
  state: TrainingState,
  interrupted: boolean,
): { metricsJson: string; metricsCsv: string } {
  const metricsJson = join(out, 'metrics.json');
  const metricsCsv = join(out, 'metrics.csv');
  const finished = state.epoch >= state.config.epochs && !interrupted;
  writeFileAtomic(
    metricsJson,
    JSON.stringify(
      { config: state.config, finished, metrics: state.metrics, stepLosses: state.stepLosses },
      null,
      2,
    ),
  );
  writeFileAtomic(
    metricsCsv,
    toCsv(
      [...EPOCH_METRIC_FIELDS],
      state.metrics.map((m) => EPOCH_METRIC_FIELDS.map((k) => m[k])),
    ),
  );
  return { metricsJson, metricsCsv };
}

/** The checkpoint's settings, with the changes a resumed run may make; others must agree. */
function resumedConfig(recorded: TrainConfig, options: TrainOptions): TrainConfig {
  const saved = withRecordedThreads(recorded);
  const config = { ...saved };
  for (const [key, value] of Object.entries(options)) {
    if (!isSettingKey(key) || value === undefined) continue;
    const savedValue = (saved as unknown as Record<string, unknown>)[key];
    if (key === 'threads' && saved.native === false) {
      throw new CliUsageError(
        `--threads ${String(value)}: the checkpoint's run is without the native kernels, which ONNX Runtime's threads serve; ` +
          "a resumed run keeps its kernels' path (drop --threads).",
      );
    }
    // A checkpoint from before the kernels' path was recorded takes the one given.
    const unrecorded = KERNEL_PATH_KEYS.has(key) && savedValue === undefined;
    if (RESUMABLE_CHANGES.has(key) || unrecorded) {
      (config as unknown as Record<string, unknown>)[key] = value;
    } else if (savedValue !== value) {
      throw new CliUsageError(
        `${optionText(key, value)} differs from the checkpoint's ${optionText(key, savedValue, false)}; ` +
          'a resumed run keeps its settings (only --epochs may change)' +
          (KERNEL_PATH_KEYS.has(key) ? ", and its kernels' path, which rounds differently." : '.'),
      );
    }
  }
  if (
    config.epochs !== saved.epochs &&
    (config.schedule === 'step' || config.schedule === 'cosine')
  ) {
    throw new CliUsageError(
      `--epochs cannot change on --resume with --schedule ${config.schedule}: its decay is spread over the run's planned ${saved.epochs} epochs.`,
    );
  }
  if (config.epochs < saved.epochs) {
    throw new CliUsageError(
      `--epochs ${config.epochs} is fewer than the checkpoint's ${saved.epochs}.`,
    );
  }
  return resolveTrainConfig(config);
}

const SETTING_KEYS = new Set<string>(TRAIN_SETTING_KEYS);

/**
 * A recorded path's threads: a run with the native kernels recorded before --threads existed ran
 * on ONNX Runtime's one thread.
 */
export function withRecordedThreads<T extends TrainSettings>(saved: T): T {
  return saved.native === true && saved.threads === undefined ? { ...saved, threads: 1 } : saved;
}

/**
 * The backend and kernels' path of `config` (for a resumed run, the checkpoint's); a path that
 * cannot be set up here is one line naming it.
 */
async function prepareKernelsPath(config: TrainConfig, options: TrainOptions) {
  try {
    return await prepareBackend(
      config.backend,
      config.native,
      undefined,
      config.stepGraphs,
      config.threads,
    );
  } catch (e) {
    if (options.resume === undefined || !(e instanceof CliUsageError)) throw e;
    const given = [options.native, options.stepGraphs, options.threads].some(
      (v) => v !== undefined,
    );
    throw new CliUsageError(
      `--resume ${options.resume}: the run ${given ? 'is' : 'was started'} on ${config.backend}` +
        (config.native
          ? ` with the native kernels (step graphs ${config.stepGraphs ?? 'all'}, ${threadsText(config.threads ?? 1)})`
          : '') +
        `, which cannot be set up here: ${e.message.replace(/\.$/, '')}.`,
    );
  }
}

function isSettingKey(key: string): boolean {
  return SETTING_KEYS.has(key);
}
