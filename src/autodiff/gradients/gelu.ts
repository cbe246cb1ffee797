/**
 * GELU, exact (erf) form, x Phi(x), with compact first and second derivatives.
 *
 * tf.layers' 'gelu' activation is x * (0.5 (1 + erf(x / sqrt 2))): five taped ops whose
 * recorded gradients (the product's two partials, the scale, Erf's exp(-u^2) 2 / sqrt(pi), the
 * division) a second-order sweep differentiates again (73 recorded nodes for one GELU's loss,
 * gradient and Hutchinson product, against 24 written by hand: bench/speed/gelu-hvp.ts). Here
 * the same forward values, bit for bit (the same ops on the same values), end in one
 * tf.customGrad node x * Phi whose gradient is itself one node, the derivative
 *
 *   dx = dy s(x),   s = Phi(x) + x phi(x),   phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
 *
 * whose own gradient, the one a second-order sweep takes, is written out:
 *
 *   d/d(dy) = s,   d/dx = dy s'(x) = dy phi(x) (2 - x^2)
 *
 * all with verified kernels (Multiply, Exp, Add, Sub, Square). When the forward pass runs under
 * a gradient, phi and s are made there once (five passes, phi as exp(ln(1/sqrt(2 pi)) - z^2)
 * from the forward's z = x / sqrt 2): the gradient is then one product, whether it runs in the
 * gradient pass or again in the sweep. A first-order step graph of the char transformer comes
 * out bit for bit the one of the stock layers with gelu-grad.ts's and layer-norm-grad.ts's
 * rewrites (bench/speed/lr-text-graph-hash.ts: first-order 0fc6ad93 either way).
 *
 * Why the second order is right: the forward node's input is x; its gradient node's inputs are
 * dy and x (the forward node's saved clone of x, which the engine tapes as an Identity of x),
 * and its gradient is the exact partial derivative in each, through Phi and phi as well (Phi
 * and phi reach it as saved values, not inputs: nothing else differentiates through them). So
 * the sweep over the taped gradient graph gets d(dx) exactly, and the forward node, swept again,
 * its total Jacobian. The gradient node's own gradient reads saved values that are not taped
 * functions of x: it is not differentiable again (no third derivatives). Checked against
 * central finite differences by the coverage case 'gelu, erf form (compact gradient ...)'.
 */
import * as tf from '@tensorflow/tfjs';
import { privateEngine } from '../engine.js';
import { markSecondOrderVerified } from '../verified-kernels.js';

/** The tape's names for the GELU node and its gradient's node (the scopes they run in). */
export const GELU_NODE = 'adahessianGelu';
export const GELU_GRADIENT_NODE = 'adahessianGeluGrad';

/** ln(1 / sqrt(2 pi)): phi(x) = exp(LOG_INV_SQRT_2PI - z^2) with z = x / sqrt 2. */
const LOG_INV_SQRT_2PI = -0.5 * Math.log(2 * Math.PI);

let registered = false;

export function registerGeluGradient(): void {
  if (registered) return;
  markSecondOrderVerified(GELU_NODE, GELU_GRADIENT_NODE);
  registered = true;
}

/** x Phi(x) as tf.layers' 'gelu' computes it (the same values, bit for bit). */
export function geluErf(x: tf.Tensor): tf.Tensor {
  registerGeluGradient();
  return tf.tidy(() => {
    // tf.layers' Gelu.apply, op for op.
    const z = tf.div(x, Math.SQRT2);
    const cdf = tf.mul(0.5, tf.add(1, tf.erf(z)));
    // Under a gradient (tf.grads, gradAndHvp), phi and s once here: otherwise the gradient
    // would make them again each time it runs (the gradient pass, then the sweep).
    const slope = recordingGradients() ? slopeOf(x, z, cdf) : null;
    const gelu = tf.customGrad((xIn, save) => {
      (save as tf.GradSaveFunc)([xIn as tf.Tensor, cdf, ...(slope ?? [])]);
      return {
        value: tf.mul(xIn as tf.Tensor, cdf),
        gradFunc: (dy, saved) => {
          const [input, savedCdf, density, s] = saved as tf.Tensor[];
          return tf.tidy(GELU_GRADIENT_NODE, () => {
            const [d, sl] =
              density != null
                ? [density, s!]
                : slopeOf(input!, tf.div(input!, Math.SQRT2), savedCdf!);
            return geluDerivative(d, sl)(dy as tf.Tensor, input!);
          });
        },
      };
    });
    // The custom node is named after the scope it is made in.
    return tf.tidy(GELU_NODE, () => gelu(x));
  });
}

/** Whether the engine is recording for a gradient (the forward pass of tf.grads and the like). */
function recordingGradients(): boolean {
  return privateEngine().state.gradientDepth > 0;
}

/**
 * phi(x) and s(x) = Phi(x) + x phi(x), from x, z = x / sqrt 2 and cdf = Phi(x): five full-size
 * passes, phi's constant in the exponent (as src/native/step-graph/gelu-grad.ts does).
 */
function slopeOf(x: tf.Tensor, z: tf.Tensor, cdf: tf.Tensor): [tf.Tensor, tf.Tensor] {
  const density = tf.exp(tf.sub(LOG_INV_SQRT_2PI, tf.square(z)));
  return [density, tf.add(cdf, tf.mul(x, density))];
}

/**
 * dy s(x) as one node of inputs dy and x, with its partial derivatives written out; phi(x) and
 * s(x) are given.
 */
function geluDerivative(density: tf.Tensor, slope: tf.Tensor) {
  return tf.customGrad((dyIn, xIn, save) => {
    const [dy, x] = [dyIn as tf.Tensor, xIn as tf.Tensor];
    (save as tf.GradSaveFunc)([dy, x, density, slope]);
    return {
      value: tf.mul(dy, slope),
      gradFunc: (u, saved) =>
        tf.tidy(() => {
          const [dySaved, xSaved, densitySaved, slopeSaved] = saved as tf.Tensor[];
          const curvature = tf.mul(densitySaved!, tf.sub(2, tf.square(xSaved!)));
          return [
            tf.mul(u as tf.Tensor, slopeSaved!),
            tf.mul(tf.mul(u as tf.Tensor, dySaved!), curvature),
          ];
        }),
    };
  });
}
