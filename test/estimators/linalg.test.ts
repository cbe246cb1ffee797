import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  gramSchmidt,
  matmul,
  symmetricEigen,
  tridiagonalEigen,
} from '../../src/estimators/linalg.js';
import { symmetricWithSpectrum } from './problems.js';

function maxResidual(
  a: Float64Array,
  n: number,
  values: Float64Array,
  vectors: Float64Array,
): number {
  // max_j ||A v_j - lambda_j v_j||
  const av = matmul(a, vectors, n, n, n);
  let worst = 0;
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += (av[i * n + j]! - values[j]! * vectors[i * n + j]!) ** 2;
    worst = Math.max(worst, Math.sqrt(s));
  }
  return worst;
}

function tridiagonalDense(d: number[], e: number[]): Float64Array {
  const n = d.length;
  const t = new Float64Array(n * n);
  d.forEach((x, i) => (t[i * n + i] = x));
  e.forEach((x, i) => {
    t[i * n + i + 1] = x;
    t[(i + 1) * n + i] = x;
  });
  return t;
}

describe('tridiagonalEigen', () => {
  it('finds 2 - 2 cos(k pi / (n + 1)) for the (−1, 2, −1) matrix, with orthonormal eigenvectors', () => {
    const n = 60;
    const d = new Array<number>(n).fill(2);
    const e = new Array<number>(n - 1).fill(-1);
    const { values, vectors } = tridiagonalEigen(d, e);
    for (let k = 1; k <= n; k++) {
      assert.ok(Math.abs(values[k - 1]! - (2 - 2 * Math.cos((k * Math.PI) / (n + 1)))) < 1e-12);
    }
    assert.ok(maxResidual(tridiagonalDense(d, e), n, values, vectors) < 1e-12);
    const gram = matmul(
      Float64Array.from(
        { length: n * n },
        (_, idx) => vectors[(idx % n) * n + Math.floor(idx / n)]!,
      ),
      vectors,
      n,
      n,
      n,
    );
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) assert.ok(Math.abs(gram[i * n + j]! - (i === j ? 1 : 0)) < 1e-12);
    }
  });

  it('returns only the requested rows, equal to those rows of the full matrix', () => {
    const d = [4, -1, 3, 0.5, 2, 7, -3];
    const e = [1, 0.2, -0.7, 1.5, 0, 0.3];
    const full = tridiagonalEigen(d, e);
    const part = tridiagonalEigen(d, e, [0, 6]);
    assert.deepEqual(Array.from(part.values), Array.from(full.values));
    for (let j = 0; j < 7; j++) {
      assert.ok(Math.abs(part.vectors[j]! - full.vectors[j]!) < 1e-14);
      assert.ok(Math.abs(part.vectors[7 + j]! - full.vectors[6 * 7 + j]!) < 1e-14);
    }
    // A zero off-diagonal entry splits the matrix; the residual still vanishes.
    assert.ok(maxResidual(tridiagonalDense(d, e), 7, full.values, full.vectors) < 1e-12);
  });

  it('handles 1x1, already diagonal and zero matrices', () => {
    assert.deepEqual(Array.from(tridiagonalEigen([3], []).values), [3]);
    assert.deepEqual(Array.from(tridiagonalEigen([3, 1, 2], [0, 0]).values), [1, 2, 3]);
    assert.deepEqual(Array.from(tridiagonalEigen([0, 0], [0]).values), [0, 0]);
    assert.throws(() => tridiagonalEigen([1, 2, 3], [1]), /need 2 off-diagonal/);
  });
});

describe('symmetricEigen (Jacobi)', () => {
  it('recovers a known spectrum, including a repeated eigenvalue', () => {
    const spectrum = [5, 3, 3, -2, 0.5, 1e-3, 0, 8];
    const a = symmetricWithSpectrum(spectrum, 11);
    const { values, vectors } = symmetricEigen(a, 8);
    const sorted = [...spectrum].sort((x, y) => x - y);
    values.forEach((v, i) => assert.ok(Math.abs(v - sorted[i]!) < 1e-12, `${v} vs ${sorted[i]}`));
    assert.ok(maxResidual(a, 8, values, vectors) < 1e-12);
  });

  it('rejects a non-symmetric or wrongly sized matrix', () => {
    assert.throws(() => symmetricEigen([1, 2, 3, 4], 2), /not symmetric at \(1, 0\)/);
    assert.throws(() => symmetricEigen([1, 2, 3], 2), /expected 4 entries/);
  });
});

describe('gramSchmidt', () => {
  it('orthonormalises and drops a dependent vector', () => {
    const q = gramSchmidt([
      [1, 1, 0],
      [2, 2, 0],
      [1, 0, 1],
    ]);
    assert.equal(q.length, 2);
    const d = (a: Float64Array, b: Float64Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);
    assert.ok(Math.abs(d(q[0]!, q[0]!) - 1) < 1e-15);
    assert.ok(Math.abs(d(q[1]!, q[1]!) - 1) < 1e-15);
    assert.ok(Math.abs(d(q[0]!, q[1]!)) < 1e-15);
  });
});
