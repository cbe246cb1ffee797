/**
 * Stochastic Lanczos quadrature for the eigenvalue spectral density (PyHessian's density()).
 * Each run starts Lanczos from a normalised Rademacher vector; the eigenvalues of the
 * tridiagonal T are quadrature nodes and the squared first components of its eigenvectors
 * their weights, so sum_i w_i f(theta_i) approximates v^T f(A) v = (1/n) tr f(A) on average.
 */
import * as tf from '@tensorflow/tfjs';
import { type SymmetricOperator, EstimatorInputError } from './operator.js';
import { lanczos } from './lanczos.js';
import { tridiagonalEigen } from './linalg.js';
import { SeededRandom } from './random.js';

export interface SlqOptions {
  /** Lanczos steps per run (default 100, as PyHessian); capped at the dimension. */
  iterations?: number;
  /** Independent runs (default 1, as PyHessian). */
  runs?: number;
  seed?: number;
}

export interface SpectralQuadrature {
  /** One array of nodes (Ritz values, ascending) per run. */
  nodes: number[][];
  /** The matching weights; each run's weights sum to 1. */
  weights: number[][];
  products: number;
}

export async function stochasticLanczosQuadrature(
  op: SymmetricOperator,
  options: SlqOptions = {},
): Promise<SpectralQuadrature> {
  const iterations = options.iterations ?? 100;
  const runs = options.runs ?? 1;
  for (const [name, value] of [
    ['iterations', iterations],
    ['runs', runs],
  ] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new EstimatorInputError(`${name} must be a positive integer, got ${value}.`);
    }
  }
  const rng = new SeededRandom(options.seed ?? 0);
  const before = op.products;
  const nodes: number[][] = [];
  const weights: number[][] = [];
  for (let run = 0; run < runs; run++) {
    const start = tf.tensor1d(rng.rademacher(op.size));
    // An invariant Krylov space ends the run: later blocks of T would get zero weight.
    const { alphas, betas } = await lanczos(op, start, {
      maxSteps: iterations,
      onInvariant: 'stop',
    });
    start.dispose();
    const { values, vectors } = tridiagonalEigen(alphas, betas, [0]);
    nodes.push(Array.from(values));
    weights.push(Array.from(vectors, (x) => x * x));
  }
  return { nodes, weights, products: op.products - before };
}
