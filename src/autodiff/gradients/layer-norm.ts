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
 * seven full-size ops, with verified kernels (Multiply, Sub, Mean, Sum). That gradient is
 * itself one tape node (of three outputs: engine.runKernelFunc, as tf.customGrad does for one)
 * of inputs dy, x and gamma, whose own gradient, what a second-order sweep takes, is written out
 * (reverse over reverse; u, uGamma, uBeta the adjoints of dx, dgamma, dbeta; m2 = mean(g xhat)):
 *
 *   w = r u,   gbar = w - mean(w) - xhat mean(w xhat)                 (g's adjoint)
 *   dybar = gbar gamma + uGamma xhat + uBeta,   gammabar = sum(gbar dy)
 *   xhatbar = uGamma dy - w m2 - g mean(w xhat),   rbar = sum_last(u (g - mean(g) - xhat m2))
 *   xbar = r (xhatbar - mean(xhatbar) - xhat mean(xhatbar xhat)) - rbar r^2 xhat / d
 *
 * (the form of bench/speed/layer-norm-hvp.ts's reverse-over-reverse block), so the sweep does
 * not differentiate the gradient's ops one by one, nor the moments.
 *
 * Why the second order is right: the forward node's inputs are x, gamma and beta, its gradient
 * node's dy, x and gamma (the forward node's saved clones of x and gamma, which the engine tapes
 * as Identity nodes of them), and that node's gradient is its exact partial derivative in each,
 * through xhat and r as functions of x (they reach it as saved values, not inputs: nothing else
 * differentiates through them). So the sweep gets the gradient's derivative exactly, and the
 * forward node, swept again, its total Jacobian. The gradient node's own gradient reads saved
 * values that are not taped functions of x: no third derivatives. Checked against central
 * finite differences by the coverage case 'layer norm (compact gradient ...)' and the char
 * transformer's; four mutations of the formulas above each fail
 * test/models/compact-gradient-layers.test.ts.
 *
 * Values: the moments as tf.moments takes them (Mean, Square of the difference, Mean), then
 * xhat gamma + beta; stock's FusedBatchNorm computes (x - mean) gamma / sqrt(var + eps) + beta:
 * equal to float32 rounding, not bit for bit.
 */
import * as tf from '@tensorflow/tfjs';
import { privateEngine } from '../engine.js';
import { markSecondOrderVerified } from '../verified-kernels.js';

/** The tape's name for the normalization node (the scope it runs in). */
export const LAYER_NORM_NODE = 'adahessianLayerNorm';
export const LAYER_NORM_GRADIENT_NODE = 'adahessianLayerNormGrad';

let registered = false;

export function registerLayerNormGradient(): void {
  if (registered) return;
  markSecondOrderVerified(LAYER_NORM_NODE, LAYER_NORM_GRADIENT_NODE);
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
    const normalize = tf.customGrad((xIn, gammaIn, betaIn, save) => {
      (save as tf.GradSaveFunc)([xIn as tf.Tensor, normalized, r, gammaIn as tf.Tensor]);
      const value = tf.add(tf.mul(normalized, gammaIn as tf.Tensor1D), betaIn as tf.Tensor1D);
      return {
        value,
        gradFunc: (dy, saved) => {
          const [xSaved, normalizedSaved, rSaved, gammaSaved] = saved as tf.Tensor[];
          return tf.tidy(LAYER_NORM_GRADIENT_NODE, () =>
            layerNormGradient(
              dy as tf.Tensor,
              xSaved!,
              gammaSaved!,
              { normalized: normalizedSaved!, r: rSaved! },
              rowAxes,
            ),
          );
        },
      };
    });
    // The custom node is named after the scope it is made in.
    return tf.tidy(LAYER_NORM_NODE, () => normalize(x, gamma, beta));
  });
}

/** The private engine call that makes a tape node of several outputs (customGrad makes one). */
interface KernelFuncEngine {
  runKernelFunc(params: {
    forwardFunc: (backend: unknown, save: tf.GradSaveFunc) => tf.Tensor[];
    backwardsFunc: (dys: tf.Tensor[], saved: tf.Tensor[]) => Record<string, () => tf.Tensor>;
    inputs: Record<string, tf.Tensor>;
  }): tf.Tensor[];
}

/**
 * [dx, dgamma, dbeta] as one tape node of inputs dy, x and gamma, whose own gradient (what a
 * second-order sweep takes) is written out; x^ and r of x come as given values.
 */
function layerNormGradient(
  dy: tf.Tensor,
  x: tf.Tensor,
  gamma: tf.Tensor,
  given: { normalized: tf.Tensor; r: tf.Tensor },
  rowAxes: number[],
): tf.Tensor[] {
  const engine = privateEngine() as unknown as KernelFuncEngine;
  const d = x.shape[x.rank - 1]!;
  return engine.runKernelFunc({
    inputs: { dy, x, gamma },
    forwardFunc: (_backend, save) => {
      const { normalized, r } = given;
      const dyNormalized = tf.mul(dy, normalized);
      const g = tf.mul(dy, gamma);
      const meanG = tf.mean(g, -1, true);
      const meanGNormalized = tf.mean(tf.mul(dyNormalized, gamma), -1, true);
      const h = tf.sub(tf.sub(g, meanG), tf.mul(normalized, meanGNormalized));
      save([dy, gamma, normalized, r, h, meanGNormalized]);
      return [tf.mul(h, r), tf.sum(dyNormalized, rowAxes), tf.sum(dy, rowAxes)];
    },
    backwardsFunc: (dys, saved) => {
      const [u, uGamma, uBeta] = dys as [tf.Tensor, tf.Tensor, tf.Tensor];
      const [dySaved, gammaSaved, xhat, r, h, m2] = saved as tf.Tensor[];
      const [dyBar, xBar, gammaBar] = tf.tidy(() =>
        secondOrder(u, uGamma, uBeta, dySaved!, gammaSaved!, xhat!, r!, h!, m2!, d, rowAxes),
      );
      return { dy: () => dyBar, x: () => xBar, gamma: () => gammaBar };
    },
  });
}

/**
 * The layer-norm gradient's own gradient (see the header): given the adjoints u, uGamma, uBeta
 * of dx, dgamma, dbeta, those of dy, x and gamma.
 */
function secondOrder(
  u: tf.Tensor,
  uGamma: tf.Tensor,
  uBeta: tf.Tensor,
  dy: tf.Tensor,
  gamma: tf.Tensor,
  xhat: tf.Tensor,
  r: tf.Tensor,
  h: tf.Tensor,
  m2: tf.Tensor,
  d: number,
  rowAxes: number[],
): tf.Tensor[] {
  const w = tf.mul(u, r);
  const meanW = tf.mean(w, -1, true);
  const meanWXhat = tf.mean(tf.mul(w, xhat), -1, true);
  const gBar = tf.sub(tf.sub(w, meanW), tf.mul(xhat, meanWXhat));
  const dyBar = tf.add(tf.mul(gBar, gamma), tf.add(tf.mul(xhat, uGamma), uBeta));
  const gammaBar = tf.sum(tf.mul(gBar, dy), rowAxes);
  const g = tf.mul(dy, gamma);
  const xhatBar = tf.sub(tf.sub(tf.mul(dy, uGamma), tf.mul(w, m2)), tf.mul(g, meanWXhat));
  const rBar = tf.sum(tf.mul(u, h), -1, true);
  const meanXhatBar = tf.mean(xhatBar, -1, true);
  const meanXhatBarXhat = tf.mean(tf.mul(xhatBar, xhat), -1, true);
  const throughXhat = tf.mul(
    tf.sub(tf.sub(xhatBar, meanXhatBar), tf.mul(xhat, meanXhatBarXhat)),
    r,
  );
  const throughR = tf.mul(xhat, tf.div(tf.mul(rBar, tf.square(r)), d));
  return [dyBar, tf.sub(throughXhat, throughR), gammaBar];
}
