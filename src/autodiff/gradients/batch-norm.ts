/**
 * Training-mode batch norm (moments over every axis but the last) with a compact gradient.
 *
 * Stock TF.js takes the moments with tf.moments (Mean, SquaredDifference, Mean) and normalizes
 * with FusedBatchNorm, whose gradient treats mean and variance as inputs: dx is then assembled
 * from FusedBatchNorm's partials (~9 full-size products, rsqrt(variance) tiled to full size)
 * plus the moments' own gradients (SquaredDifference's ~6 full-size ops, two broadcasts, adds).
 * A second-order sweep differentiates every one of those ops again. Here the normalization is
 * one tf.customGrad node whose gradient is the total derivative through the moments, the
 * standard formula (xc = x - mean, r = rsqrt(variance + eps), sums over the batch axes, N
 * elements per channel):
 *
 *   dx = gamma r dy - gamma r^3 sum(dy xc) / N * xc - gamma r sum(dy) / N
 *   dgamma = r sum(dy xc),   dbeta = sum(dy)
 *
 * six full-size ops, written with verified kernels (Sub, Multiply, Add, Sum, Rsqrt, ...).
 *
 * Why the second order is right: the node's inputs are x, gamma and beta only; the moments are
 * taped ops outside it, and the gradient reads them (xc, variance) through the node's saved
 * clones, which the engine tapes as Identity nodes. So the taped gradient graph is the function
 * dx(x, xc(x), variance(x), dy) and the second-order sweep differentiates its dependence on x
 * through xc and the variance; the node itself, swept again, contributes the total Jacobian
 * exactly once, because nothing else on its path reads the moments. Checked against central
 * finite differences by the coverage case 'batch norm, training (compact gradient)'.
 *
 * The moments are Sum / N (taken over by the native kernels) instead of Mean (TF.js's cpu Mean
 * over the batch axes transposes the whole tensor first: ~100 ms per ResNet-20 layer at batch
 * 64), the variance is mean(xc * xc) and the output xc * (gamma r) + beta: equal to stock
 * TF.js's to float32 rounding.
 */
import * as tf from '@tensorflow/tfjs';
import { markSecondOrderVerified } from '../verified-kernels.js';

/** The tape's name for the normalization node (the scope it runs in). */
export const BATCH_NORM_TRAINING_NODE = 'adahessianBatchNormTraining';

export interface BatchNormTraining {
  /** gamma (x - mean) / sqrt(variance + epsilon) + beta. */
  normed: tf.Tensor;
  /** The batch's per-channel mean and (biased) variance, for the moving statistics. */
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
}

let registered = false;

export function registerBatchNormGradient(): void {
  if (registered) return;
  markSecondOrderVerified(BATCH_NORM_TRAINING_NODE);
  registered = true;
}

/**
 * Batch norm in training mode over every axis but the last (channels last), as tf.layers'
 * batchNormalization with axis -1 computes it; the same values to float32 rounding.
 */
export function batchNormTraining(
  x: tf.Tensor,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  epsilon: number,
): BatchNormTraining {
  registerBatchNormGradient();
  const channels = x.shape[x.rank - 1];
  if (x.rank < 2 || channels == null) {
    throw new Error(`batchNormTraining: x must have rank 2 or more, got shape [${x.shape}].`);
  }
  for (const [name, t] of [
    ['gamma', gamma],
    ['beta', beta],
  ] as const) {
    if (t.rank !== 1 || t.shape[0] !== channels) {
      throw new Error(
        `batchNormTraining: ${name} must have shape [${channels}] (x's channels), got [${t.shape}].`,
      );
    }
  }
  if (!(epsilon > 0)) {
    throw new Error(`batchNormTraining: epsilon must be positive, got ${epsilon}.`);
  }
  const axes = x.shape.slice(0, -1).map((_, i) => i);
  const count = x.size / channels;
  return tf.tidy(() => {
    const mean = tf.div(tf.sum(x, axes), count) as tf.Tensor1D;
    const centered = tf.sub(x, mean);
    const variance = tf.div(tf.sum(tf.mul(centered, centered), axes), count) as tf.Tensor1D;
    const normalize = tf.customGrad((_xIn, gammaIn, betaIn, save) => {
      (save as tf.GradSaveFunc)([centered, variance, gammaIn as tf.Tensor]);
      // xc * (gamma r) + beta: two broadcast ops the native kernels take (TF.js's cpu
      // FusedBatchNorm is a JS loop, ~20 ms a ResNet-20 layer at batch 64).
      const scale = tf.mul(gammaIn as tf.Tensor1D, tf.rsqrt(tf.add(variance, epsilon)));
      const value = tf.add(tf.mul(centered, scale), betaIn as tf.Tensor1D);
      return {
        value,
        gradFunc: (dy, saved) =>
          tf.tidy(() => compactGradient(dy as tf.Tensor, saved, axes, count, epsilon)),
      };
    });
    // The custom node is named after the scope it is made in.
    const normed = tf.tidy(BATCH_NORM_TRAINING_NODE, () => normalize(x, gamma, beta));
    return { normed, mean, variance };
  });
}

function compactGradient(
  dy: tf.Tensor,
  saved: tf.Tensor[],
  axes: number[],
  count: number,
  epsilon: number,
): tf.Tensor[] {
  const [centered, variance, gamma] = saved as [tf.Tensor, tf.Tensor1D, tf.Tensor1D];
  const r = tf.rsqrt(tf.add(variance, epsilon));
  const sumDy = tf.sum(dy, axes);
  const sumDyCentered = tf.sum(tf.mul(dy, centered), axes);
  const scale = tf.mul(gamma, r);
  // Per channel: dx = scale dy + centeredCoefficient xc + shift.
  const centeredCoefficient = tf.div(tf.mul(tf.mul(scale, tf.square(r)), sumDyCentered), -count);
  const shift = tf.div(tf.mul(scale, sumDy), -count);
  const dx = tf.add(tf.mul(dy, scale), tf.add(tf.mul(centered, centeredCoefficient), shift));
  return [dx, tf.mul(sumDyCentered, r), sumDy];
}
