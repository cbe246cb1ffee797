/**
 * Top eigenpairs by power iteration with deflation, PyHessian's method: for each eigenvalue,
 * start from a random unit vector and re-orthogonalise it against the eigenvectors already
 * found before every product.
 *
 * The stop differs. PyHessian stops when the Rayleigh quotient changes by less than tol
 * relative; it can change slowly while still far off (it missed lambda_2 of the small CNN by
 * 1.2e-3 at tol 1e-3). We stop on the residual: ||A v - lambda v|| <= tol |lambda|, which for
 * a symmetric A bounds the distance from lambda to an eigenvalue by tol |lambda|. Found
 * vectors are only accurate to tol, so while iterating for a later pair the part of the
 * residual along them is left out (it cannot shrink below their error); at the end a
 * Rayleigh-Ritz step on the found vectors, from the products already made, removes their
 * mixing, and the residuals reported are the true ones of the returned pairs.
 */
import * as tf from '@tensorflow/tfjs';
import { type SymmetricOperator, EstimatorInputError, matvec } from './operator.js';
import { dot, norm, orthogonalize, randomUnit, unit } from './flat-vectors.js';
import {
  checkTopEigenOptions,
  relativeResidual,
  type TopEigenOptions,
  type TopEigenResult,
} from './lanczos.js';
import { symmetricEigen } from './linalg.js';
import { SeededRandom } from './random.js';

export async function powerIteration(
  op: SymmetricOperator,
  options: TopEigenOptions = {},
): Promise<TopEigenResult> {
  const { topN, maxIter, tol, seed, which } = checkTopEigenOptions(options, op.size);
  if (which !== 'magnitude') {
    throw new EstimatorInputError(
      `Power iteration finds the eigenvalues of largest magnitude only; use method 'lanczos' for which: '${which}'.`,
    );
  }
  const rng = new SeededRandom(seed);
  const before = op.products;
  const vectors: tf.Tensor1D[] = [];
  // A v for each found v, kept for the final Rayleigh-Ritz step.
  const products: tf.Tensor1D[] = [];
  let found: tf.Tensor2D | null = null;
  try {
    for (let i = 0; i < topN; i++) {
      let next = randomUnit(rng, op.size);
      let vector: tf.Tensor1D | null = null;
      let product: tf.Tensor1D | null = null;
      for (let iteration = 0; iteration < maxIter; iteration++) {
        const deflated = orthogonalize(next, found);
        next.dispose();
        vector?.dispose();
        product?.dispose();
        vector = unit(deflated);
        deflated.dispose();
        product = await matvec(op, vector);
        const eigenvalue = dot(product, vector);
        if (norm(product) === 0) {
          // The vector lies in the null space: an exact eigenvector with eigenvalue 0.
          next = vector.clone();
          break;
        }
        const v = vector;
        const residual = tf.tidy(() => {
          const r = tf.sub(product!, tf.mul(v, eigenvalue)) as tf.Tensor1D;
          return norm(orthogonalize(r, found));
        });
        next = unit(product);
        if (residual <= tol * Math.abs(eigenvalue)) break;
      }
      next.dispose();
      vectors.push(vector!);
      products.push(product!);
      const previousFound: tf.Tensor2D | null = found;
      found = tf.stack(vectors) as tf.Tensor2D;
      previousFound?.dispose();
    }
    const result = rayleighRitz(found!, products);
    return {
      ...result,
      tol,
      converged: result.residuals.map((r) => r <= tol),
      products: op.products - before,
    };
  } finally {
    tf.dispose([...vectors, ...products]);
    found?.dispose();
  }
}

/**
 * The Ritz pairs of A on the span of the orthonormal rows of V, given A V's rows: eigenpairs
 * (theta, s) of V (A V)^T give y = V^T s and A y = (A V)^T s, so the true residuals need no
 * further products. Returned by descending |theta|.
 */
function rayleighRitz(
  basis: tf.Tensor2D,
  products: tf.Tensor1D[],
): { eigenvalues: number[]; eigenvectors: tf.Tensor1D[]; residuals: number[] } {
  const k = products.length;
  return tf.tidy(() => {
    const av = tf.stack(products) as tf.Tensor2D;
    const g = tf.matMul(basis, av, false, true).dataSync();
    const symmetric = new Float64Array(k * k);
    for (let i = 0; i < k; i++)
      for (let j = 0; j < k; j++) symmetric[i * k + j] = (g[i * k + j]! + g[j * k + i]!) / 2;
    const { values, vectors } = symmetricEigen(symmetric, k);
    const order = Array.from(values, (_, i) => i).sort(
      (a, b) => Math.abs(values[b]!) - Math.abs(values[a]!),
    );
    // Row r of the coefficients is eigenvector order[r] (column order[r] of `vectors`).
    const coefficients = tf.tensor2d(
      order.flatMap((c) => Array.from({ length: k }, (_, row) => vectors[row * k + c]!)),
      [k, k],
    );
    const ritz = tf.matMul(coefficients, basis);
    const ritzProducts = tf.matMul(coefficients, av);
    const eigenvalues = order.map((c) => values[c]!);
    const residualNorms = tf
      .norm(tf.sub(ritzProducts, tf.mul(ritz, tf.tensor2d(eigenvalues, [k, 1]))), 'euclidean', 1)
      .dataSync();
    const residuals = eigenvalues.map((e, r) => relativeResidual(residualNorms[r]!, e));
    const eigenvectors = tf.unstack(ritz) as tf.Tensor1D[];
    eigenvectors.forEach((v) => tf.keep(v));
    return { eigenvalues, eigenvectors, residuals };
  });
}
