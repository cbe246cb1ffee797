import * as tf from '@tensorflow/tfjs';
import type { SecondOrderCase } from './types.js';

/** Small deterministic tensors: cases must build the same problem on every backend. */
export function seeded(shape: number[], seed: number, scale = 1): tf.Tensor {
  return tf.randomNormal(shape, 0, scale, 'float32', seed);
}

export function problem(vars: tf.Variable[], consts: tf.Tensor[], lossFn: () => tf.Tensor) {
  return {
    vars,
    lossFn: lossFn as () => tf.Scalar,
    dispose: () => tf.dispose([...vars, ...consts]),
  };
}

export const basicCases: SecondOrderCase[] = [
  {
    name: 'quadratic 0.5 w^T A w',
    group: 'ops',
    build() {
      const a = seeded([6, 6], 1);
      const sym = tf.add(a, tf.transpose(a));
      const w = tf.variable(seeded([6, 1], 2));
      return problem([w], [a, sym], () => tf.mul(0.5, tf.sum(tf.mul(w, tf.matMul(sym, w)))));
    },
  },
  {
    name: 'x * exp(x) (saved-output kernel)',
    group: 'ops',
    build() {
      const w = tf.variable(seeded([5], 3, 0.5));
      return problem([w], [], () => tf.sum(tf.mul(w, tf.exp(w))));
    },
  },
  {
    name: 'dense matMul + bias, tanh, sigmoid head',
    group: 'ops',
    build() {
      const x = seeded([4, 5], 4);
      const w = tf.variable(seeded([5, 3], 5, 0.5));
      const b = tf.variable(seeded([3], 6, 0.1));
      return problem([w, b], [x], () => tf.sum(tf.sigmoid(tf.tanh(tf.add(tf.matMul(x, w), b)))));
    },
  },
];
