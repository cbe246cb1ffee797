/**
 * Hutchinson's estimators (Bekas, Kokiopoulou and Saad 2007): with Rademacher probes z,
 * tr(A) = E[z.Az] and diag(A) = E[z * Az]. Probes are drawn in JavaScript from a seed, so
 * the same seed gives the same estimate on every backend.
 */
import * as tf from '@tensorflow/tfjs';
import { type SymmetricOperator, EstimatorInputError } from './operator.js';
import { rademacherRows } from './flat-vectors.js';
import { SeededRandom } from './random.js';

export interface HutchinsonTraceOptions {
  /** The most probes (products), default 100 as PyHessian. */
  maxIter?: number;
  /** Stop once the standard error is at most tol * |estimate| (default 1e-3). */
  tol?: number;
  /** Never stop before this many probes (default 10, or maxIter if smaller). */
  minSamples?: number;
  /** Seed for the probes (default 0). */
  seed?: number;
  /** Probes sent to the operator together (they can share a forward pass); default 1. */
  probesPerPass?: number;
  /**
   * Sizes of consecutive blocks of the vector (e.g. one per variable); when given, the
   * trace of each diagonal block is estimated from the same probes: E[z_b . (Az)_b] = tr(A_bb).
   */
  segments?: number[];
}

export interface TraceEstimate {
  trace: number;
  /** Standard error of the estimate (sample standard deviation / sqrt(samples)); NaN from one sample. */
  stdError: number;
}

export interface HutchinsonTraceResult extends TraceEstimate {
  products: number;
  /** The individual z.Az values (PyHessian's trace() returns this list). */
  samples: number[];
  /** Per-block estimates (and their samples) when `segments` was given; they sum to `trace`. */
  segments?: (TraceEstimate & { samples: number[] })[];
}

export function meanAndStdError(values: readonly number[]): TraceEstimate {
  const k = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / k;
  if (k < 2) return { trace: mean, stdError: NaN };
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / (k - 1);
  return { trace: mean, stdError: Math.sqrt(variance / k) };
}

function checkCount(name: string, value: number, min = 1): void {
  if (!Number.isInteger(value) || value < min) {
    throw new EstimatorInputError(`${name} must be an integer of at least ${min}, got ${value}.`);
  }
}

function checkSegments(segments: number[] | undefined, size: number): void {
  if (segments === undefined) return;
  const total = segments.reduce((a, b) => a + b, 0);
  if (!segments.every((s) => Number.isInteger(s) && s >= 0) || total !== size) {
    throw new EstimatorInputError(
      `segments must be non-negative integers summing to the operator size ${size}, got [${segments.join(', ')}].`,
    );
  }
}

export async function hutchinsonTrace(
  op: SymmetricOperator,
  options: HutchinsonTraceOptions = {},
): Promise<HutchinsonTraceResult> {
  const maxIter = options.maxIter ?? 100;
  const tol = options.tol ?? 1e-3;
  const perPass = options.probesPerPass ?? 1;
  checkCount('maxIter', maxIter);
  checkCount('probesPerPass', perPass);
  if (!(tol >= 0)) throw new EstimatorInputError(`tol must be a non-negative number, got ${tol}.`);
  const minSamples = Math.min(options.minSamples ?? 10, maxIter);
  const segments = options.segments;
  checkSegments(segments, op.size);
  const rng = new SeededRandom(options.seed ?? 0);
  const before = op.products;
  const samples: number[] = [];
  const segmentSamples: number[][] = (segments ?? []).map(() => []);
  while (samples.length < maxIter) {
    const k = Math.min(perPass, maxIter - samples.length);
    const z = rademacherRows(rng, k, op.size);
    const az = await op.matmat(z);
    const [totals, blocks] = tf.tidy(() => {
      const product = tf.mul(z, az);
      const perBlock =
        segments === undefined
          ? []
          : tf.split(product, segments, 1).map((part) => tf.sum(part, 1).arraySync() as number[]);
      return [tf.sum(product, 1).arraySync() as number[], perBlock];
    });
    tf.dispose([z, az]);
    samples.push(...totals);
    blocks.forEach((values, b) => segmentSamples[b]!.push(...values));
    const { trace, stdError } = meanAndStdError(samples);
    if (samples.length >= minSamples && stdError <= tol * Math.abs(trace)) break;
  }
  const result: HutchinsonTraceResult = {
    ...meanAndStdError(samples),
    products: op.products - before,
    samples,
  };
  if (segments !== undefined) {
    result.segments = segmentSamples.map((values) => ({
      ...meanAndStdError(values),
      samples: values,
    }));
  }
  return result;
}

export interface HutchinsonDiagonalOptions {
  /** Number of probes (products), default 100. */
  samples?: number;
  seed?: number;
  probesPerPass?: number;
}

export interface HutchinsonDiagonalResult {
  /** The estimated diagonal as a flat [n] tensor; the caller disposes it. */
  diagonal: tf.Tensor1D;
  products: number;
}

export async function hutchinsonOperatorDiagonal(
  op: SymmetricOperator,
  options: HutchinsonDiagonalOptions = {},
): Promise<HutchinsonDiagonalResult> {
  const samples = options.samples ?? 100;
  const perPass = options.probesPerPass ?? 1;
  checkCount('samples', samples);
  checkCount('probesPerPass', perPass);
  const rng = new SeededRandom(options.seed ?? 0);
  const before = op.products;
  let sum = tf.zeros([op.size]) as tf.Tensor1D;
  let done = 0;
  try {
    while (done < samples) {
      const k = Math.min(perPass, samples - done);
      const z = rademacherRows(rng, k, op.size);
      const az = await op.matmat(z);
      const next = tf.tidy(() => tf.add(sum, tf.sum(tf.mul(z, az), 0)) as tf.Tensor1D);
      tf.dispose([z, az, sum]);
      sum = next;
      done += k;
    }
  } catch (error) {
    sum.dispose();
    throw error;
  }
  const diagonal = tf.tidy(() => tf.div(sum, samples) as tf.Tensor1D);
  sum.dispose();
  return { diagonal, products: op.products - before };
}
