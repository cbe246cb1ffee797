/**
 * Second-order support for activations.
 *
 * Stock TF.js differentiates elu with the EluGrad kernel, which has no gradient of its own,
 * so a second derivative through elu throws. We give EluGrad one, built from taped ops.
 * The other activations' stock gradients are already built from ops whose gradients are
 * correct (once the comparison kernels have their zero gradients, see nn.ts, and the tape
 * order is repaired for softmax / logSoftmax, which reuse their output); registering them
 * here only marks them verified, after the finite-difference cases in cases/nn.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { markSecondOrderVerified } from '../verified-kernels.js';

/** What this module marks verified; each is on the path of some case in cases/nn.ts. */
export const ACTIVATION_VERIFIED_KERNELS: readonly string[] = [
  'Elu',
  'EluGrad',
  'Selu',
  'LeakyRelu',
  'Prelu',
  'Softmax',
  // tf.logSoftmax is a tf.customGrad op; its node carries the op's scope name.
  'logSoftmax__op',
];

let registered = false;

export function registerActivationGradients(): void {
  if (registered) return;
  registerEluGradGradient();
  markSecondOrderVerified(...ACTIVATION_VERIFIED_KERNELS);
  registered = true;
}

/**
 * EluGrad computes dx = dy where y >= 0 and dy (y + 1) elsewhere (y = elu(x)), matching the
 * cpu and wasm kernels' branch at y = 0. Its partial derivatives:
 *   d dx / d dy = 1 or (y + 1);   d dx / d y = 0 or dy.
 */
function registerEluGradGradient(): void {
  tf.registerGradient({
    kernelName: 'EluGrad',
    inputsToSave: ['dy', 'y'],
    gradFunc: (ddx, saved) => {
      const [dy, y] = saved as [tf.Tensor, tf.Tensor];
      const g = ddx as tf.Tensor;
      const nonNegative = tf.greaterEqual(y, 0);
      return {
        dy: () => tf.where(nonNegative, g, tf.mul(g, tf.add(y, 1))),
        y: () => tf.where(nonNegative, tf.zerosLike(g), tf.mul(g, dy)),
      };
    },
  });
}
