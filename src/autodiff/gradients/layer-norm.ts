/**
 * Layer norm over the last axis (per-feature gamma and beta) with a compact gradient.
 *
 * tf.layers' LayerNormalization takes tf.moments over the last axis, tiles the mean, variance,
 * gamma and beta to the input's full size and calls FusedBatchNorm, whose gradient treats the
 * tiled statistics as inputs: dx is assembled from FusedBatchNorm's partials, the Tiles'
 * gradients and the moments' gradients, ~30 ops, and a second-order sweep differentiates each
 * of them again (363 recorded nodes for one layer norm's loss, gradient and Hutchinson
 * product, against 63 written by hand: bench/speed/layer-norm-hvp.ts). Here the normalization
 * is one tf.customGrad node whose gradient is the total derivative through the moments, the
 * standard formula (xhat = (x - mean) r, r = rsqrt(variance + eps), means over the last axis,
 * sums over every other axis):
 *
 *   g = gamma dy,   dx = r (g - mean(g) - xhat mean(g xhat))
 *   dgamma = sum(dy xhat),   dbeta = sum(dy)
 *
 * seven full-size ops, with verified kernels (Multiply, Sub, Mean, Sum).
 *
 * Why the second order is right (as in batch-norm.ts): the node's inputs are x, gamma and
 * beta only; xhat and r are taped ops of x outside it, and the gradient reads them through the
 * node's saved clones, which the engine tapes as Identity nodes. So the taped gradient graph is
 * dx(xhat(x), r(x), gamma, dy), and the formula above is exact as a function of xhat and r; the
 * second-order sweep differentiates it through them, and the node, swept again, contributes
 * the total Jacobian exactly once, because nothing else on its path reads xhat or r. Checked
 * against central finite differences by the coverage case 'layer norm (compact gradient ...)'.
 *
 * Values: the moments as tf.moments takes them (Mean, Square of the difference, Mean), then
 * xhat gamma + beta; stock's FusedBatchNorm computes (x - mean) gamma / sqrt(var + eps) + beta:
 * equal to float32 rounding, not bit for bit.
 */
import * as tf from '@tensorflow/tfjs';
import { markSecondOrderVerified } from '../verified-kernels.js';

/** The tape's name for the normalization node (the scope it runs in). */
export const LAYER_NORM_NODE = 'adahessianLayerNorm';

let registered = false;

export function registerLayerNormGradient(): void {
  if (registered) return;
  markSecondOrderVerified(LAYER_NORM_NODE);
  registered = true;
}

/**
 * gamma (x - mean) / sqrt(variance + epsilon) + beta, with the moments over the last axis, as
 * tf.layers' layerNormalization with axis -1 computes it; the same values to float32 rounding.
 */
export function layerNormLastAxis(
  x: tf.Tensor,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  epsilon: number,
): tf.Tensor {
  registerLayerNormGradient();
  const features = x.shape[x.rank - 1];
  if (x.rank < 2 || features == null) {
    throw new Error(`layerNormLastAxis: x must have rank 2 or more, got shape [${x.shape}].`);
  }
  for (const [name, t] of [
    ['gamma', gamma],
    ['beta', beta],
  ] as const) {
    if (t.rank !== 1 || t.shape[0] !== features) {
      throw new Error(
        `layerNormLastAxis: ${name} must have shape [${features}] (x's last axis), got [${t.shape}].`,
      );
    }
  }
  if (!(epsilon > 0)) {
    throw new Error(`layerNormLastAxis: epsilon must be positive, got ${epsilon}.`);
  }
  const rowAxes = x.shape.slice(0, -1).map((_, i) => i);
  return tf.tidy(() => {
    const mean = tf.mean(x, -1, true);
    const centered = tf.sub(x, mean);
    const variance = tf.mean(tf.square(centered), -1, true);
    const r = tf.rsqrt(tf.add(variance, epsilon));
    const normalized = tf.mul(centered, r);
    const normalize = tf.customGrad((_xIn, gammaIn, betaIn, save) => {
      (save as tf.GradSaveFunc)([normalized, r, gammaIn as tf.Tensor]);
      const value = tf.add(tf.mul(normalized, gammaIn as tf.Tensor1D), betaIn as tf.Tensor1D);
      return {
        value,
        gradFunc: (dy, saved) => tf.tidy(() => compactGradient(dy as tf.Tensor, saved, rowAxes)),
      };
    });
    // The custom node is named after the scope it is made in.
    return tf.tidy(LAYER_NORM_NODE, () => normalize(x, gamma, beta));
  });
}

function compactGradient(dy: tf.Tensor, saved: tf.Tensor[], rowAxes: number[]): tf.Tensor[] {
  const [normalized, r, gamma] = saved as [tf.Tensor, tf.Tensor, tf.Tensor1D];
  const dyNormalized = tf.mul(dy, normalized);
  const g = tf.mul(dy, gamma);
  const meanG = tf.mean(g, -1, true);
  const meanGNormalized = tf.mean(tf.mul(dyNormalized, gamma), -1, true);
  const dx = tf.mul(tf.sub(tf.sub(g, meanG), tf.mul(normalized, meanGNormalized)), r);
  return [dx, tf.sum(dyNormalized, rowAxes), tf.sum(dy, rowAxes)];
}
