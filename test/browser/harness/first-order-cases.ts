/**
 * First-order gradients the browser page computes twice, with stock TensorFlow.js and after
 * installing adahessian, to compare (test/browser/first-order.browser.ts). The conv and pool
 * cases are those of test/autodiff/conv.test.ts; the tile and broadcast cases are the ones
 * tf.layers' batch normalization takes on webgl.
 */
import * as tf from '@tensorflow/tfjs';

/** Per case: the gradients downloaded, or the error it raised. */
export type FirstOrderResult = Record<string, number[][] | { error: string }>;

type T4 = tf.Tensor4D;

function normal(shape: number[], seed: number, std = 1): tf.Tensor {
  return tf.randomNormal(shape, 0, std, 'float32', seed);
}

/** Gradients of sum(sin(op(a, b))) with respect to both inputs. */
function grads2(op: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor, aShape: number[], bShape: number[]) {
  return (): number[][] =>
    tf.tidy(() => {
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.sin(op(a, b))));
      return g([normal(aShape, 1), normal(bShape, 2, 0.5)]).map((t) => Array.from(t.dataSync()));
    });
}

/** Gradient of sum(sin(op(a)) * w) for a fixed random w. */
function grad1(op: (a: tf.Tensor) => tf.Tensor, aShape: number[]) {
  return (): number[][] =>
    tf.tidy(() => {
      const a = normal(aShape, 1);
      const w = normal(op(a).shape, 3);
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.sin(op(t)), w)))(a);
      return [Array.from(g.dataSync())];
    });
}

const X = [2, 7, 7, 2];
const F = [3, 3, 2, 3];

export interface FirstOrderCase {
  name: string;
  run: () => number[][];
}

export function firstOrderCases(): FirstOrderCase[] {
  return [
    { name: 'conv2d valid', run: grads2((x, f) => tf.conv2d(x as T4, f as T4, 1, 'valid'), X, F) },
    {
      name: 'conv2d same, strides 2',
      run: grads2((x, f) => tf.conv2d(x as T4, f as T4, 2, 'same'), X, F),
    },
    {
      name: 'conv2d + relu + maxPool 3x3 s2 same',
      run: grads2(
        (x, f) => tf.maxPool(tf.relu(tf.conv2d(x as T4, f as T4, 1, 'same')), 3, 2, 'same'),
        X,
        F,
      ),
    },
    {
      name: 'conv2d + avgPool 2x2 s2 valid',
      run: grads2(
        (x, f) => tf.avgPool(tf.conv2d(x as T4, f as T4, 1, 'same'), 2, 2, 'valid'),
        X,
        F,
      ),
    },
    {
      name: 'fused conv2d relu',
      run: grads2(
        (x, f) =>
          tf.fused.conv2d({
            x: x as T4,
            filter: f as T4,
            strides: 1,
            pad: 'same',
            activation: 'relu',
          }),
        X,
        F,
      ),
    },
    {
      name: 'depthwiseConv2d',
      run: grads2((x, f) => tf.depthwiseConv2d(x as T4, f as T4, 1, 'same'), X, [3, 3, 2, 2]),
    },
    {
      name: 'conv2dTranspose',
      run: grads2(
        (x, f) => tf.conv2dTranspose(x as T4, f as T4, [2, 14, 14, 3], 2, 'same'),
        X,
        [3, 3, 3, 2],
      ),
    },
    { name: 'matMul', run: grads2((a, b) => tf.matMul(a, b), [3, 4], [4, 5]) },
    { name: 'softmax', run: grad1((a) => tf.softmax(a), [3, 5]) },
    { name: 'tile rank 2', run: grad1((a) => tf.tile(a, [3, 2]), [2, 3]) },
    { name: 'tile rank 4', run: grad1((a) => tf.tile(a, [2, 3, 3, 1]), [1, 2, 1, 4]) },
    {
      name: 'broadcastTo rank 4',
      run: grad1((a) => tf.broadcastTo(a, [2, 3, 3, 4]), [1, 1, 1, 4]),
    },
    { name: 'tile rank 5', run: grad1((a) => tf.tile(a, [2, 1, 2, 1, 3]), [1, 2, 2, 3, 1]) },
  ];
}
