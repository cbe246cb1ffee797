/**
 * Hutch++ (Meyer, Musco, Musco and Woodruff 2021): spend a third of the products on a
 * sketch Q of the dominant subspace, take tr(Q^T A Q) exactly, and run Hutchinson only on
 * the deflated remainder (I - QQ^T) A (I - QQ^T). On matrices with a few large eigenvalues
 * the remainder has far smaller variance, so the same budget gives a much smaller error.
 */
import * as tf from '@tensorflow/tfjs';
import { type SymmetricOperator, EstimatorInputError } from './operator.js';
import { orthonormalRows, rademacherRows } from './flat-vectors.js';
import { meanAndStdError, type TraceEstimate } from './hutchinson.js';
import { SeededRandom } from './random.js';

export interface HutchPlusPlusOptions {
  /** Total products to spend (at least 3); default 99. */
  budget?: number;
  seed?: number;
}

export interface HutchPlusPlusResult extends TraceEstimate {
  products: number;
  /** tr(Q^T A Q), the exactly computed part. */
  sketchTrace: number;
  /** Hutchinson samples on the deflated remainder. */
  samples: number[];
}

export async function hutchPlusPlusTrace(
  op: SymmetricOperator,
  options: HutchPlusPlusOptions = {},
): Promise<HutchPlusPlusResult> {
  const budget = options.budget ?? 99;
  if (!Number.isInteger(budget) || budget < 3) {
    throw new EstimatorInputError(`Hutch++ needs a budget of at least 3 products, got ${budget}.`);
  }
  const rng = new SeededRandom(options.seed ?? 0);
  const before = op.products;
  const sketchSize = Math.min(Math.floor(budget / 3), op.size);
  const s = rademacherRows(rng, sketchSize, op.size);
  const as = await op.matmat(s);
  s.dispose();
  const q = orthonormalRows(as);
  as.dispose();
  let sketchTrace = 0;
  if (q.shape[0] > 0) {
    const aq = await op.matmat(q);
    sketchTrace = tf.tidy(() => tf.sum(tf.mul(q, aq)).dataSync()[0]!);
    aq.dispose();
  }
  const remaining = budget - (op.products - before);
  let samples: number[] = [];
  if (remaining > 0) {
    const g = rademacherRows(rng, remaining, op.size);
    // Project the probes off the sketched subspace: G (I - Q^T Q) in row form.
    const deflated = tf.tidy(
      () => tf.sub(g, tf.matMul(tf.matMul(g, q, false, true), q)) as tf.Tensor2D,
    );
    g.dispose();
    const ag = await op.matmat(deflated);
    samples = tf.tidy(() => tf.sum(tf.mul(deflated, ag), 1).arraySync() as number[]);
    tf.dispose([deflated, ag]);
  }
  q.dispose();
  const remainder = samples.length > 0 ? meanAndStdError(samples) : { trace: 0, stdError: 0 };
  return {
    trace: sketchTrace + remainder.trace,
    stdError: remainder.stdError,
    products: op.products - before,
    sketchTrace,
    samples,
  };
}
