/** Option checks shared by the model builders; errors name the model and the option. */

export function checkPositiveInteger(model: string, option: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`${model}: option '${option}' must be a positive integer, got ${value}.`);
  }
}

export function checkShape(model: string, option: string, shape: readonly number[]): void {
  if (
    !Array.isArray(shape) ||
    shape.length === 0 ||
    !shape.every((d) => Number.isInteger(d) && d > 0)
  ) {
    throw new Error(
      `${model}: option '${option}' must be a non-empty list of positive integers, got ${JSON.stringify(shape)}.`,
    );
  }
}
