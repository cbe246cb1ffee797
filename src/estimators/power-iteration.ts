/**
 * Top eigenpairs by power iteration with deflation, PyHessian's method: for each eigenvalue,
 * start from a random unit vector, re-orthogonalise it against the eigenvectors already
 * found before every product, and stop when the Rayleigh quotient v.Av changes by less
 * than tol relative to its previous value.
 */
import * as tf from '@tensorflow/tfjs';
import { type SymmetricOperator, EstimatorInputError, matvec } from './operator.js';
import { dot, norm, orthogonalize, randomUnit, unit } from './flat-vectors.js';
import { checkTopEigenOptions, type TopEigenOptions, type TopEigenResult } from './lanczos.js';
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
  const eigenvalues: number[] = [];
  const eigenvectors: tf.Tensor1D[] = [];
  const converged: boolean[] = [];
  let found: tf.Tensor2D | null = null;
  try {
    for (let i = 0; i < topN; i++) {
      let v = randomUnit(rng, op.size);
      let eigenvalue: number | null = null;
      let done = false;
      for (let iteration = 0; iteration < maxIter; iteration++) {
        const deflated = orthogonalize(v, found);
        v.dispose();
        v = unit(deflated);
        deflated.dispose();
        const av = await matvec(op, v);
        const rayleigh = dot(av, v);
        const productNorm = norm(av);
        if (productNorm === 0) {
          // v lies in the null space: an exact eigenvector with eigenvalue 0.
          av.dispose();
          eigenvalue = 0;
          done = true;
          break;
        }
        v.dispose();
        v = unit(av);
        av.dispose();
        const previous = eigenvalue;
        eigenvalue = rayleigh;
        if (
          previous !== null &&
          Math.abs(previous - rayleigh) / (Math.abs(previous) + 1e-6) < tol
        ) {
          done = true;
          break;
        }
      }
      const final = orthogonalize(v, found);
      v.dispose();
      const vector = unit(final);
      final.dispose();
      eigenvalues.push(eigenvalue!);
      eigenvectors.push(vector);
      converged.push(done);
      const previousFound: tf.Tensor2D | null = found;
      found = tf.stack(eigenvectors) as tf.Tensor2D;
      previousFound?.dispose();
    }
  } catch (error) {
    tf.dispose(eigenvectors);
    throw error;
  } finally {
    found?.dispose();
  }
  // Report in descending magnitude, as the Lanczos method does.
  const order = eigenvalues
    .map((_, i) => i)
    .sort((a, b) => Math.abs(eigenvalues[b]!) - Math.abs(eigenvalues[a]!));
  return {
    eigenvalues: order.map((i) => eigenvalues[i]!),
    eigenvectors: order.map((i) => eigenvectors[i]!),
    converged: order.map((i) => converged[i]!),
    products: op.products - before,
  };
}
