/** A learning rate: a constant or a schedule of the (1-based) step about to be taken. */
export type LearningRate = number | ((step: number) => number);

export function validateLearningRate(lr: unknown, owner: string): asserts lr is LearningRate {
  if (typeof lr === 'function') return;
  if (typeof lr !== 'number' || !Number.isFinite(lr) || lr < 0) {
    throw new RangeError(
      `${owner}: learningRate must be a finite number >= 0 or a function of the step, got ${String(lr)}.`,
    );
  }
}

export function learningRateAt(lr: LearningRate, step: number, owner: string): number {
  const value = typeof lr === 'function' ? lr(step) : lr;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new RangeError(
      `${owner}: the learning-rate schedule returned ${String(value)} at step ${step}; expected a finite number >= 0.`,
    );
  }
  return value;
}

/** The constant learning rate, for getConfig; schedules (functions) cannot be serialised. */
export function serialisableLearningRate(lr: LearningRate, owner: string): number {
  if (typeof lr === 'function') {
    throw new Error(
      `${owner}.getConfig(): a learning-rate schedule (a function) cannot be serialised. ` +
        'Save with a constant learningRate, or re-create the optimizer with the schedule after loading.',
    );
  }
  return lr;
}

/** Learning-rate schedule shapes: the multiplier of the base rate at each step. */
export const SCHEDULE_NAMES = ['constant', 'step', 'cosine', 'inverse-sqrt'] as const;
export type ScheduleName = (typeof SCHEDULE_NAMES)[number];

export interface ScheduleOptions {
  /** Steps of linear warm-up from base/warmupSteps to the base rate (0: none). */
  warmupSteps?: number;
  /** Steps in the whole run; step and cosine decay over it. */
  totalSteps: number;
}

/** The step schedule's decay: x0.1 at half of the run and again at three quarters (the paper's CIFAR recipe, 80 and 120 of 160 epochs). */
export const STEP_DECAY = { factor: 0.1, at: [0.5, 0.75] } as const;

/**
 * The factor that multiplies the base learning rate at 1-based step `step`:
 *
 * - warm-up (every shape): step / warmupSteps for step <= warmupSteps;
 * - constant: 1;
 * - step: 0.1 from half the run, 0.01 from three quarters (STEP_DECAY);
 * - cosine: 0.5 (1 + cos(pi p)), p the fraction of the post-warm-up steps already taken;
 * - inverse-sqrt: sqrt(warmupSteps / step) after the warm-up, fairseq's inverse_sqrt (which
 *   the paper's translation runs used); with no warm-up, 1 / sqrt(step).
 */
export function scheduleFactor(name: ScheduleName, step: number, options: ScheduleOptions): number {
  const warmup = options.warmupSteps ?? 0;
  const total = options.totalSteps;
  if (!Number.isInteger(step) || step < 1) {
    throw new RangeError(`scheduleFactor: step must be an integer >= 1, got ${step}.`);
  }
  if (!Number.isInteger(warmup) || warmup < 0) {
    throw new RangeError(`scheduleFactor: warmupSteps must be an integer >= 0, got ${warmup}.`);
  }
  if (!Number.isInteger(total) || total < 1) {
    throw new RangeError(`scheduleFactor: totalSteps must be an integer >= 1, got ${total}.`);
  }
  if (step <= warmup) return step / warmup;
  switch (name) {
    case 'constant':
      return 1;
    case 'step': {
      const done = (step - 1) / total;
      return STEP_DECAY.at.reduce((f, at) => (done >= at ? f * STEP_DECAY.factor : f), 1);
    }
    case 'cosine': {
      const span = Math.max(1, total - warmup);
      const p = Math.min(1, (step - warmup - 1) / span);
      return 0.5 * (1 + Math.cos(Math.PI * p));
    }
    case 'inverse-sqrt':
      return Math.sqrt(Math.max(warmup, 1) / step);
    default:
      throw new RangeError(
        `Unknown learning-rate schedule '${String(name)}'; expected one of ${SCHEDULE_NAMES.join(', ')}.`,
      );
  }
}

/**
 * Sets the learning rate `optimizer` uses from its next step on, for TF.js's own optimizers
 * (sgd, momentum, adam, adagrad, rmsprop read a `learningRate` field; sgd and momentum keep it
 * as a scalar tensor too, which setLearningRate replaces) and this package's AdamW and
 * AdaHessian (a `config.learningRate`). A schedule is applied by calling it before each step,
 * so it depends only on the step number and survives checkpoints without being serialised.
 */
export function setLearningRate(optimizer: object, lr: number): void {
  if (!(Number.isFinite(lr) && lr >= 0)) {
    throw new RangeError(`setLearningRate: expected a finite number >= 0, got ${lr}.`);
  }
  const o = optimizer as {
    setLearningRate?: (lr: number) => void;
    learningRate?: unknown;
    config?: { learningRate?: unknown };
  };
  if (typeof o.setLearningRate === 'function') {
    o.setLearningRate(lr);
  } else if (o.config != null && 'learningRate' in o.config) {
    o.config.learningRate = lr;
  } else if (typeof o.learningRate === 'number') {
    o.learningRate = lr;
  } else {
    throw new TypeError(
      `setLearningRate: ${optimizer.constructor.name} has no learning rate this function knows how to set.`,
    );
  }
}
