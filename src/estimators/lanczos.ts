/**
 * The Lanczos process with full re-orthogonalisation, and the top (or bottom) eigenpairs it
 * gives. Every new Krylov vector is orthogonalised against all earlier ones, so in float32
 * the Ritz values do not produce spurious copies ("ghosts") of converged eigenvalues.
 */
import * as tf from '@tensorflow/tfjs';
import { type SymmetricOperator, EstimatorInputError, matvec } from './operator.js';
import { dot, norm, orthogonalize, randomUnit } from './flat-vectors.js';
import { tridiagonalEigen } from './linalg.js';
import { SeededRandom } from './random.js';

/** The tridiagonal matrix T = Q^T A Q that k Lanczos steps build, and the basis Q. */
export interface LanczosDecomposition {
  /** T's diagonal (k). */
  alphas: number[];
  /**
   * betas[j] couples basis vectors j and j + 1; T's off-diagonal is betas[0..k-2] and
   * betas[k-1] is the norm of the residual after the last step (0 at an invariant subspace).
   */
  betas: number[];
  /** The orthonormal Krylov basis as rows ([k, n]); undefined when keepBasis was false. */
  basis?: tf.Tensor2D;
  /** True when the process stopped because the Krylov space became invariant. */
  invariant: boolean;
}

export interface LanczosRunOptions {
  /** At most this many steps (products); capped at the dimension. */
  maxSteps: number;
  /** What to do when the Krylov space becomes invariant before maxSteps: stop, or go on
   *  from a fresh random vector orthogonal to the basis (T then splits into blocks). */
  onInvariant?: 'stop' | 'restart';
  /** Needed for restarts. */
  rng?: SeededRandom;
  /** Keep the basis (for Ritz vectors); the caller disposes it. */
  keepBasis?: boolean;
  /** Called after every step with the decomposition so far; return true to stop. */
  shouldStop?: (alphas: readonly number[], betas: readonly number[]) => boolean;
}

/** Relative size below which a residual counts as zero (float32 products). */
const INVARIANT_TOLERANCE = 1e-5;

/** Runs Lanczos from `start` (any non-zero [n] vector; it is normalised, not consumed). */
export async function lanczos(
  op: SymmetricOperator,
  start: tf.Tensor1D,
  options: LanczosRunOptions,
): Promise<LanczosDecomposition> {
  const n = op.size;
  const maxSteps = Math.min(options.maxSteps, n);
  const alphas: number[] = [];
  const betas: number[] = [];
  const rows: tf.Tensor1D[] = [];
  let basis: tf.Tensor2D | null = null;
  let invariant = false;
  let q = tf.tidy(() => tf.div(start, tf.norm(start)) as tf.Tensor1D);
  let scale = 0; // a running estimate of ||T||, to judge when a residual is zero
  let failed = true;
  try {
    for (let step = 0; step < maxSteps; step++) {
      rows.push(q);
      const previousBasis: tf.Tensor2D | null = basis;
      basis = tf.stack(rows) as tf.Tensor2D;
      previousBasis?.dispose();
      const aq = await matvec(op, q);
      const alpha = dot(q, aq);
      // Full re-orthogonalisation subsumes the three-term recurrence: w = Aq - Q (Q^T A q).
      const w = orthogonalize(aq, basis);
      aq.dispose();
      const beta = norm(w);
      alphas.push(alpha);
      scale = Math.max(scale, Math.abs(alpha) + beta);
      const atInvariant = beta <= INVARIANT_TOLERANCE * scale;
      betas.push(atInvariant ? 0 : beta);
      const last = step + 1 === maxSteps;
      if (last || options.shouldStop?.(alphas, betas)) {
        w.dispose();
        invariant = atInvariant;
        break;
      }
      if (atInvariant) {
        w.dispose();
        if ((options.onInvariant ?? 'stop') === 'stop' || options.rng == null) {
          invariant = true;
          break;
        }
        // Restart: a random direction orthogonal to everything so far, with T split at this step.
        const fresh = randomUnit(options.rng, n);
        const orthogonal = orthogonalize(fresh, basis);
        fresh.dispose();
        q = tf.tidy(() => tf.div(orthogonal, tf.norm(orthogonal)) as tf.Tensor1D);
        orthogonal.dispose();
      } else {
        q = tf.tidy(() => tf.div(w, beta) as tf.Tensor1D);
        w.dispose();
      }
    }
    failed = false;
  } finally {
    tf.dispose(rows);
    if (failed) basis?.dispose();
  }
  if (!options.keepBasis) {
    basis?.dispose();
    return { alphas, betas, invariant };
  }
  return { alphas, betas, basis: basis!, invariant };
}

/** Which end of the spectrum to find. */
export type EigenTarget = 'magnitude' | 'largest' | 'smallest';

export interface TopEigenOptions {
  /** How many eigenpairs (default 1). */
  topN?: number;
  /** Power iteration: the most products per eigenvalue. Lanczos: the most products in all is
   *  maxIter * topN (the same worst case), capped at the dimension. Default 100. */
  maxIter?: number;
  /** Relative accuracy at which to stop (default 1e-3). */
  tol?: number;
  /** Seed for the random start vectors (default 0). */
  seed?: number;
  /** 'magnitude' (default, as PyHessian's power iteration), 'largest' or 'smallest' (algebraic). */
  which?: EigenTarget;
}

export interface TopEigenResult {
  /** Ordered by the target: descending |lambda|, descending, or ascending lambda. */
  eigenvalues: number[];
  /** Unit eigenvectors as flat [n] tensors, matching `eigenvalues`; the caller disposes. */
  eigenvectors: tf.Tensor1D[];
  /** Products spent. */
  products: number;
  /** Whether each eigenvalue met the tolerance (residuals[i] <= tol) within the product budget. */
  converged: boolean[];
  /**
   * ||A v - lambda v|| / |lambda| for each pair, the tolerance each result met: it bounds the
   * relative distance from lambda to an eigenvalue of A. Lanczos reports the Ritz residual
   * |beta_k s_k| (exact up to rounding with full re-orthogonalisation).
   */
  residuals: number[];
  /** The tolerance asked for. */
  tol: number;
}

export function checkTopEigenOptions(
  options: TopEigenOptions,
  size: number,
): Required<TopEigenOptions> {
  const topN = options.topN ?? 1;
  const maxIter = options.maxIter ?? 100;
  const tol = options.tol ?? 1e-3;
  const which = options.which ?? 'magnitude';
  if (!Number.isInteger(topN) || topN < 1) {
    throw new EstimatorInputError(`topN must be a positive integer, got ${topN}.`);
  }
  if (topN > size) {
    throw new EstimatorInputError(`topN (${topN}) exceeds the number of parameters (${size}).`);
  }
  if (!Number.isInteger(maxIter) || maxIter < 1) {
    throw new EstimatorInputError(`maxIter must be a positive integer, got ${maxIter}.`);
  }
  if (!(tol > 0) || !Number.isFinite(tol)) {
    throw new EstimatorInputError(`tol must be a positive number, got ${tol}.`);
  }
  if (!['magnitude', 'largest', 'smallest'].includes(which)) {
    throw new EstimatorInputError(
      `which must be 'magnitude', 'largest' or 'smallest', got '${which}'.`,
    );
  }
  return { topN, maxIter, tol, which, seed: options.seed ?? 0 };
}

/** ||A v - lambda v|| / |lambda|: 0 for an exact pair (a zero eigenvalue with A v = 0 included). */
export function relativeResidual(residual: number, eigenvalue: number): number {
  if (residual === 0) return 0;
  return eigenvalue === 0 ? Infinity : residual / Math.abs(eigenvalue);
}

/** Indices of the k wanted values of an ascending list, in the order they are reported. */
function pick(values: Float64Array, k: number, which: EigenTarget): number[] {
  const idx = Array.from(values, (_, i) => i);
  if (which === 'largest') idx.reverse();
  if (which === 'magnitude') idx.sort((i, j) => Math.abs(values[j]!) - Math.abs(values[i]!));
  return idx.slice(0, k);
}

const key = (value: number, which: EigenTarget): number =>
  which === 'magnitude' ? Math.abs(value) : which === 'largest' ? value : -value;

/**
 * At an invariant subspace (the last beta is 0) every Ritz value is exact, but a single
 * Krylov space holds one copy of each distinct eigenvalue, so repeated eigenvalues can be
 * missing. A restart from a random vector orthogonal to the basis explores the rest, whose
 * distinct eigenvalues all appear in the new block; the block just closed therefore shows
 * every value the rest can still hold. Go on only while that block beats the N-th value.
 */
function blockCanImprove(
  alphas: readonly number[],
  betas: readonly number[],
  topN: number,
  which: EigenTarget,
  tol: number,
): boolean {
  const k = alphas.length;
  if (k < topN) return true;
  let blockStart = k - 1;
  while (blockStart > 0 && betas[blockStart - 1] !== 0) blockStart--;
  const block = tridiagonalEigen(
    alphas.slice(blockStart),
    betas.slice(blockStart, k - 1),
    [],
  ).values;
  const all = tridiagonalEigen(alphas, betas, []).values;
  const chosen = pick(all, topN, which);
  const threshold = key(all[chosen[chosen.length - 1]!]!, which);
  const best = Math.max(...Array.from(block, (x) => key(x, which)));
  // Copies of the N-th value itself would not change the values reported.
  return best > threshold + tol * Math.abs(threshold);
}

/**
 * Top eigenpairs by Lanczos with full re-orthogonalisation. Stops when every wanted Ritz
 * pair (theta, y) has residual ||A y - theta y|| = |beta_k s_k| <= tol |theta|; that bounds
 * the distance from theta to an eigenvalue of A, so the relative error is at most tol.
 */
export async function lanczosTopEigen(
  op: SymmetricOperator,
  options: TopEigenOptions = {},
): Promise<TopEigenResult> {
  const { topN, maxIter, tol, seed, which } = checkTopEigenOptions(options, op.size);
  const rng = new SeededRandom(seed);
  const start = randomUnit(rng, op.size);
  const before = op.products;
  const ritzResiduals = (alphas: readonly number[], betas: readonly number[]): number[] => {
    const k = alphas.length;
    const { values, vectors } = tridiagonalEigen(alphas, betas, [k - 1]);
    const residual = betas[k - 1]!;
    return pick(values, Math.min(topN, k), which).map((i) =>
      relativeResidual(Math.abs(residual * vectors[i]!), values[i]!),
    );
  };
  const decomposition = await lanczos(op, start, {
    maxSteps: maxIter * topN,
    onInvariant: 'restart',
    rng,
    keepBasis: true,
    shouldStop: (alphas, betas) => {
      const k = alphas.length;
      if (betas[k - 1] === 0)
        return k === op.size || !blockCanImprove(alphas, betas, topN, which, tol);
      if (k < topN) return false;
      return ritzResiduals(alphas, betas).every((r) => r <= tol);
    },
  });
  start.dispose();
  const { alphas, betas } = decomposition;
  const basis = decomposition.basis!;
  const k = alphas.length;
  // A full solve when Lanczos exhausted the space (k = n) makes every Ritz pair exact.
  const residuals = k === op.size ? new Array<number>(topN).fill(0) : ritzResiduals(alphas, betas);
  const { values, vectors } = tridiagonalEigen(alphas, betas);
  const chosen = pick(values, topN, which);
  const coefficients = tf.tensor2d(
    chosen.flatMap((i) => Array.from({ length: k }, (_, row) => vectors[row * k + i]!)),
    [chosen.length, k],
  );
  const ritz = tf.tidy(() => {
    const y = tf.matMul(coefficients, basis);
    return tf.unstack(tf.div(y, tf.norm(y, 'euclidean', 1, true))) as tf.Tensor1D[];
  });
  tf.dispose([coefficients, basis]);
  return {
    eigenvalues: chosen.map((i) => values[i]!),
    eigenvectors: ritz,
    products: op.products - before,
    converged: residuals.map((r) => r <= tol),
    residuals,
    tol,
  };
}
