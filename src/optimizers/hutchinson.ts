/**
 * Hutchinson's estimator of the Hessian diagonal (Bekas, Kokiopoulou, Saad 2007):
 * diag(H) = E[z * (H z)] for Rademacher z, averaged here over `samples` probes.
 * One forward and one gradient pass are shared by all probes (gradAndHvpMany).
 */
import * as tf from '@tensorflow/tfjs';
import { addAll } from '../util/add-all.js';
import { gradAndHvpMany } from '../autodiff/hvp.js';
import { RademacherGenerator } from './rademacher.js';

export interface HutchinsonOptions {
  /** Probes per estimate (default 1). Variance falls as 1 / samples. */
  samples?: number;
  /** Seed of the probe generator (default 0). Ignored when `generator` or `probes` is given. */
  seed?: number;
  /** Draw the probes from this generator, advancing it. */
  generator?: RademacherGenerator;
  /** Use these probes instead of drawing them: one list per sample, one tensor per variable. */
  probes?: tf.Tensor[][];
  /** Throw when the loss is NaN or Inf (default true). */
  checkFinite?: boolean;
}

export interface HutchinsonEstimate {
  loss: tf.Scalar;
  grads: tf.Tensor[];
  /** The estimate of diag(H), one tensor per variable, signed (no absolute value, no averaging). */
  diagonal: tf.Tensor[];
}

/**
 * Loss, gradient and Hutchinson estimate of the Hessian diagonal of `lossFn` with respect
 * to `vars`. The caller disposes the returned tensors.
 */
export function hutchinsonDiagonal(
  lossFn: () => tf.Scalar,
  vars: tf.Variable[],
  options: HutchinsonOptions = {},
): HutchinsonEstimate {
  const samples = options.samples ?? options.probes?.length ?? 1;
  if (!Number.isInteger(samples) || samples < 1) {
    throw new RangeError(`samples must be a positive integer, got ${samples}.`);
  }
  const ownProbes = options.probes == null;
  const probes =
    options.probes ??
    drawProbes(options.generator ?? new RademacherGenerator(options.seed ?? 0), vars, samples);
  try {
    const { loss, grads, hvps } = gradAndHvpMany(lossFn, vars, probes, {
      checkFinite: options.checkFinite ?? true,
    });
    const diagonal = diagonalFromProducts(probes, hvps);
    tf.dispose(hvps);
    return { loss, grads, diagonal };
  } finally {
    if (ownProbes) tf.dispose(probes);
  }
}

/**
 * Makes one probe tensor of `shape` whose values `fill` writes (every element). The default
 * makes a new array; the native path's reuses the arrays of earlier steps' probes.
 */
export type ProbeTensorMaker = (shape: number[], fill: (out: Float32Array) => void) => tf.Tensor;

const newProbeTensor: ProbeTensorMaker = (shape, fill) => {
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  fill(values);
  return tf.tensor(values, shape, 'float32');
};

/** `samples` probe lists, sample by sample and within a sample variable by variable. */
export function drawProbes(
  generator: RademacherGenerator,
  vars: readonly tf.Tensor[],
  samples: number,
  makeTensor: ProbeTensorMaker = newProbeTensor,
): tf.Tensor[][] {
  return Array.from({ length: samples }, () =>
    vars.map((v) => makeTensor([...v.shape], (out) => generator.signsInto(out))),
  );
}

/** (1 / s) sum_j z_j * (H z_j), per variable. */
export function diagonalFromProducts(probes: tf.Tensor[][], hvps: tf.Tensor[][]): tf.Tensor[] {
  return tf.tidy(() =>
    probes[0]!.map((_, i) => {
      const terms = probes.map((z, j) => tf.mul(z[i]!, hvps[j]![i]!));
      return terms.length === 1 ? terms[0]! : tf.div(addAll(terms), terms.length);
    }),
  );
}
