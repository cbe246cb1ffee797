/**
 * Second-order support for activations.
 *
 * Stock TF.js differentiates elu with the EluGrad kernel, which has no gradient of its own,
 * so a second derivative through elu throws. We give EluGrad one, built from taped ops.
 * The other activations' stock gradients are already built from ops whose gradients are
 * correct (once the comparison kernels have their zero gradients, see nn.ts, and the tape
 * order is repaired for softmax / logSoftmax, which reuse their output); registering them
 * here only marks them verified, after the finite-difference cases in cases/nn.ts.
 *
 * Relu's gradient becomes one ReluGrad kernel (ours, src/kernels/relu-grad.ts) on backends
 * that have it: one pass instead of Step and Multiply, the same values bit for bit.
 */
import * as tf from '@tensorflow/tfjs';
import { RELU_GRAD } from '../../kernels/relu-grad.js';
import { markSecondOrderVerified } from '../verified-kernels.js';

/** What this module marks verified; each is on the path of some case in cases/nn.ts. */
export const ACTIVATION_VERIFIED_KERNELS: readonly string[] = [
  'Elu',
  'EluGrad',
  'Selu',
  'LeakyRelu',
  'Prelu',
  'Softmax',
  RELU_GRAD,
  // tf.logSoftmax is a tf.customGrad op; its node carries the op's scope name.
  'logSoftmax__op',
];

let registered = false;

export function registerActivationGradients(): void {
  if (registered) return;
  registerEluGradGradient();
  registerReluGradient();
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

/** Whether the current backend has our one-pass ReluGrad kernel (cpu and wasm do). */
function hasReluGradKernel(): boolean {
  return tf.getKernel(RELU_GRAD, tf.getBackend()) != null;
}

function reluGrad(dy: tf.Tensor, x: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel(RELU_GRAD, { dy, x }) as tf.Tensor;
}

/**
 * Relu's gradient dy * step(x) as one ReluGrad kernel where the backend has it (float32 x),
 * else the stock gradient (Step, then Multiply). ReluGrad is linear in dy with the same mask,
 * and piecewise constant in x.
 */
function registerReluGradient(): void {
  const stock = tf.getGradient('Relu');
  if (stock == null) throw new Error('TF.js has no gradient for Relu registered.');
  tf.registerGradient({
    kernelName: 'Relu',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [tf.Tensor];
      if (x.dtype !== 'float32' || !hasReluGradKernel()) return stock.gradFunc(dy, saved, attrs);
      return { x: () => reluGrad(dy as tf.Tensor, x) };
    },
  });
  tf.registerGradient({
    kernelName: RELU_GRAD,
    inputsToSave: ['x'],
    gradFunc: (ddx, saved) => {
      const [x] = saved as [tf.Tensor];
      const g = ddx as tf.Tensor;
      return {
        dy: () => (hasReluGradKernel() ? reluGrad(g, x) : tf.mul(g, tf.step(x))),
        x: () => tf.zerosLike(x),
      };
    },
  });
}
