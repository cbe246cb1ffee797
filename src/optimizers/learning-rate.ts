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
