/**
 * Small dense linear algebra in float64 plain JavaScript: the eigen-decomposition of the
 * tridiagonal matrices Lanczos builds (at most a few hundred rows), Jacobi for small
 * symmetric matrices (exact answers in tests, Hessians assembled column by column), and
 * Gram-Schmidt. Matrices are row-major Float64Arrays.
 */

export interface SymmetricEigen {
  /** Eigenvalues in ascending order. */
  values: Float64Array;
  /**
   * Row-major matrix whose column j is the eigenvector of values[j]; only the rows asked
   * for when the caller passed `rows` (then row r of this array is row rows[r] of the full
   * eigenvector matrix).
   */
  vectors: Float64Array;
}

/**
 * Eigenvalues and eigenvectors of the symmetric tridiagonal matrix with `diagonal` (n) and
 * `offDiagonal` (n - 1), by the implicit QL method with Wilkinson shifts.
 *
 * `rows` picks which rows of the eigenvector matrix to return: the rotations act on each
 * row independently, so Lanczos can ask for just the first (quadrature weights) or last
 * (Ritz residuals) row at O(n^2) cost instead of O(n^3). Default: all rows.
 */
export function tridiagonalEigen(
  diagonal: ArrayLike<number>,
  offDiagonal: ArrayLike<number>,
  rows?: readonly number[],
): SymmetricEigen {
  const n = diagonal.length;
  if (offDiagonal.length < n - 1) {
    throw new Error(
      `tridiagonalEigen: ${n} diagonal entries need ${n - 1} off-diagonal entries, got ${offDiagonal.length}.`,
    );
  }
  const rowList = rows ?? Array.from({ length: n }, (_, i) => i);
  const r = rowList.length;
  const d = Float64Array.from(diagonal);
  const e = new Float64Array(n);
  for (let i = 0; i < n - 1; i++) e[i] = offDiagonal[i]!;
  // z holds the chosen rows of the accumulated rotation matrix, starting from identity rows.
  const z = new Float64Array(r * n);
  rowList.forEach((row, k) => {
    if (!Number.isInteger(row) || row < 0 || row >= n) {
      throw new Error(`tridiagonalEigen: row ${row} is outside 0..${n - 1}.`);
    }
    z[k * n + row] = 1;
  });

  for (let l = 0; l < n; l++) {
    let iterations = 0;
    let m: number;
    do {
      for (m = l; m < n - 1; m++) {
        const dd = Math.abs(d[m]!) + Math.abs(d[m + 1]!);
        if (Math.abs(e[m]!) <= Number.EPSILON * dd) break;
      }
      if (m === l) break;
      if (iterations++ >= 60) {
        throw new Error('tridiagonalEigen: the QL iteration did not converge (non-finite input?).');
      }
      // Wilkinson shift from the leading 2x2 block.
      let g = (d[l + 1]! - d[l]!) / (2 * e[l]!);
      let radius = Math.hypot(g, 1);
      g = d[m]! - d[l]! + e[l]! / (g + (g >= 0 ? radius : -radius));
      let s = 1;
      let c = 1;
      let p = 0;
      let deflated = false;
      for (let i = m - 1; i >= l; i--) {
        const f = s * e[i]!;
        const b = c * e[i]!;
        radius = Math.hypot(f, g);
        e[i + 1] = radius;
        if (radius === 0) {
          // Underflow: the matrix split; restart the sweep on the smaller block.
          d[i + 1]! -= p;
          e[m] = 0;
          deflated = true;
          break;
        }
        s = f / radius;
        c = g / radius;
        g = d[i + 1]! - p;
        radius = (d[i]! - g) * s + 2 * c * b;
        p = s * radius;
        d[i + 1] = g + p;
        g = c * radius - b;
        for (let k = 0; k < r; k++) {
          const zi = z[k * n + i]!;
          const zi1 = z[k * n + i + 1]!;
          z[k * n + i + 1] = s * zi + c * zi1;
          z[k * n + i] = c * zi - s * zi1;
        }
      }
      if (deflated) continue;
      d[l]! -= p;
      e[l] = g;
      e[m] = 0;
    } while (m !== l);
  }
  return sortedEigen(d, z, r);
}

/**
 * Eigen-decomposition of a small symmetric matrix (n x n, row-major) by cyclic Jacobi
 * rotations: slow (O(n^3) per sweep) but simple and accurate to rounding.
 */
export function symmetricEigen(matrix: ArrayLike<number>, n: number): SymmetricEigen {
  if (matrix.length !== n * n) {
    throw new Error(
      `symmetricEigen: expected ${n * n} entries for ${n}x${n}, got ${matrix.length}.`,
    );
  }
  const a = Float64Array.from(matrix);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) {
      const scale = Math.abs(a[i * n + j]!) + Math.abs(a[j * n + i]!) + 1e-300;
      if (Math.abs(a[i * n + j]! - a[j * n + i]!) > 1e-8 * scale) {
        throw new Error(`symmetricEigen: the matrix is not symmetric at (${i}, ${j}).`);
      }
    }
  }
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let total = 0;
  for (const x of a) total += x * x;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q]! ** 2;
    if (off <= 1e-30 * total || off === 0) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (apq === 0) continue;
        // Rotation angle that zeroes a[p][q]: t = tan(phi), cot(2 phi) = theta.
        const theta = (a[q * n + q]! - a[p * n + p]!) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]!;
          const akq = a[k * n + q]!;
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!;
          const aqk = a[q * n + k]!;
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]!;
          const vkq = v[k * n + q]!;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) d[i] = a[i * n + i]!;
  return sortedEigen(d, v, n);
}

/** Sorts eigenvalues ascending and permutes the columns of the (rows x n) vector block to match. */
function sortedEigen(d: Float64Array, z: Float64Array, rows: number): SymmetricEigen {
  const n = d.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => d[i]! - d[j]!);
  const values = Float64Array.from(order, (i) => d[i]!);
  const vectors = new Float64Array(rows * n);
  for (let k = 0; k < rows; k++) {
    for (let j = 0; j < n; j++) vectors[k * n + j] = z[k * n + order[j]!]!;
  }
  return { values, vectors };
}

/**
 * Orthonormalises `vectors` in order by modified Gram-Schmidt, run twice for accuracy;
 * vectors that are (numerically) in the span of earlier ones are dropped.
 */
export function gramSchmidt(vectors: readonly ArrayLike<number>[]): Float64Array[] {
  const basis: Float64Array[] = [];
  for (const input of vectors) {
    const w = Float64Array.from(input);
    const originalNorm = Math.sqrt(dot(w, w));
    for (let pass = 0; pass < 2; pass++) {
      for (const q of basis) {
        const c = dot(q, w);
        for (let i = 0; i < w.length; i++) w[i]! -= c * q[i]!;
      }
    }
    const norm = Math.sqrt(dot(w, w));
    if (norm <= 1e-10 * originalNorm || norm === 0) continue;
    for (let i = 0; i < w.length; i++) w[i]! /= norm;
    basis.push(w);
  }
  return basis;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Row-major product of (m x k) and (k x n) matrices. */
export function matmul(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  k: number,
  n: number,
): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p]!;
      if (aip === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j]! += aip * b[p * n + j]!;
    }
  }
  return out;
}
