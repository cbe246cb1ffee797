/** Small statistics for timings. */

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The smallest multiple of `unit` that is at least `n`. */
export function roundUpToMultiple(n: number, unit: number): number {
  return Math.max(unit, Math.ceil(n / unit) * unit);
}
