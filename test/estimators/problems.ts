/** Test matrices with known spectra, built in float64. */
import { gramSchmidt, matmul } from '../../src/estimators/linalg.js';
import { SeededRandom } from '../../src/estimators/random.js';

/** A random orthogonal n x n matrix (row-major; its columns are orthonormal). */
export function randomOrthogonal(n: number, seed: number): Float64Array {
  const rng = new SeededRandom(seed);
  const columns = gramSchmidt(Array.from({ length: n }, () => rng.normal(n)));
  if (columns.length !== n) throw new Error('random vectors were dependent');
  const q = new Float64Array(n * n);
  columns.forEach((col, j) => col.forEach((x, i) => (q[i * n + j] = x)));
  return q;
}

/** Q diag(values) Q^T for a random orthogonal Q: a symmetric matrix with exactly `values` as spectrum. */
export function symmetricWithSpectrum(values: readonly number[], seed: number): Float64Array {
  const n = values.length;
  const q = randomOrthogonal(n, seed);
  const qd = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) qd[i * n + j] = q[i * n + j]! * values[j]!;
  const qt = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) qt[j * n + i] = q[i * n + j]!;
  const a = matmul(qd, qt, n, n, n);
  // Symmetrise exactly so float rounding cannot make it asymmetric.
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) {
      const m = (a[i * n + j]! + a[j * n + i]!) / 2;
      a[i * n + j] = m;
      a[j * n + i] = m;
    }
  }
  return a;
}

/** A spectrum: `top` leading values, then `bulk` values spread uniformly in [lo, hi]. */
export function spectrum(top: number[], bulk: number, lo: number, hi: number): number[] {
  const rest = Array.from({ length: bulk }, (_, i) => lo + ((hi - lo) * (i + 0.5)) / bulk);
  return [...top, ...rest];
}

export function relError(estimate: number, exact: number): number {
  return Math.abs(estimate - exact) / Math.abs(exact);
}
