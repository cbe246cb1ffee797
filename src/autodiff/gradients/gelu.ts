/**
 * GELU, exact (erf) form, x Phi(x), with a compact gradient.
 *
 * tf.layers' 'gelu' activation is x * (0.5 (1 + erf(x / sqrt 2))): five taped ops whose
 * recorded gradients (the product's two partials, the scale, Erf's exp(-u^2) 2 / sqrt(pi), the
 * division) a second-order sweep differentiates again. Here the same forward values, bit for
 * bit (the same ops on the same values), end in one tf.customGrad node x * Phi whose gradient
 * is the total derivative
 *
 *   dx = dy (Phi(x) + x phi(x)),   phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
 *
 * with verified kernels (Multiply, Exp, Add).
 *
 * Why the second order is right (as in batch-norm.ts): the node's input is x; Phi is taped
 * ops of x outside it, and the gradient reads x and Phi through the node's saved clones, which
 * the engine tapes as Identity nodes. The formula is exact as a function of x and Phi(x), so
 * the sweep differentiates it through both, and nothing else on the node's path reads Phi.
 * Checked against central finite differences by the coverage case 'gelu, erf form (compact
 * gradient ...)'.
 */
import * as tf from '@tensorflow/tfjs';
import { markSecondOrderVerified } from '../verified-kernels.js';

/** The tape's name for the GELU node (the scope it runs in). */
export const GELU_NODE = 'adahessianGelu';

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

let registered = false;

export function registerGeluGradient(): void {
  if (registered) return;
  markSecondOrderVerified(GELU_NODE);
  registered = true;
}

/** x Phi(x) as tf.layers' 'gelu' computes it (the same values, bit for bit). */
export function geluErf(x: tf.Tensor): tf.Tensor {
  registerGeluGradient();
  return tf.tidy(() => {
    // tf.layers' Gelu.apply, op for op.
    const cdf = tf.mul(0.5, tf.add(1, tf.erf(tf.div(x, Math.SQRT2))));
    const gelu = tf.customGrad((xIn, save) => {
      (save as tf.GradSaveFunc)([xIn as tf.Tensor, cdf]);
      return {
        value: tf.mul(xIn as tf.Tensor, cdf),
        gradFunc: (dy, saved) =>
          tf.tidy(() => {
            const [input, savedCdf] = saved as [tf.Tensor, tf.Tensor];
            const density = tf.mul(tf.exp(tf.mul(tf.square(input), -0.5)), INV_SQRT_2PI);
            return tf.mul(dy as tf.Tensor, tf.add(savedCdf, tf.mul(input, density)));
          }),
      };
    });
    // The custom node is named after the scope it is made in.
    return tf.tidy(GELU_NODE, () => gelu(x));
  });
}
