import * as tf from '@tensorflow/tfjs';
import type { SecondOrderCase } from './types.js';

/** Small deterministic tensors: cases must build the same problem on every backend. */
export function seeded(shape: number[], seed: number, scale = 1): tf.Tensor {
  return tf.randomNormal(shape, 0, scale, 'float32', seed);
}

/** A variable holding `initial`, which it takes over (the initial tensor is disposed). */
function variable(initial: tf.Tensor): tf.Variable {
  const v = tf.variable(initial);
  initial.dispose();
  return v;
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
      const sym = tf.tidy(() => {
        const a = seeded([6, 6], 1);
        return tf.add(a, tf.transpose(a));
      });
      const w = variable(seeded([6, 1], 2));
      return problem([w], [sym], () => tf.mul(0.5, tf.sum(tf.mul(w, tf.matMul(sym, w)))));
    },
  },
  {
    name: 'x * exp(x) (saved-output kernel)',
    group: 'ops',
    build() {
      const w = variable(seeded([5], 3, 0.5));
      return problem([w], [], () => tf.sum(tf.mul(w, tf.exp(w))));
    },
  },
  {
    name: 'dense matMul + bias, tanh, sigmoid head',
    group: 'ops',
    build() {
      const x = seeded([4, 5], 4);
      const w = variable(seeded([5, 3], 5, 0.5));
      const b = variable(seeded([3], 6, 0.1));
      return problem([w, b], [x], () => tf.sum(tf.sigmoid(tf.tanh(tf.add(tf.matMul(x, w), b)))));
    },
  },
  {
    name: 'stack, unstack, broadcastTo, expandDims, onesLike',
    group: 'ops',
    build() {
      const w = variable(seeded([3, 4], 7, 0.7));
      return problem([w], [], () => {
        const rows = tf.unstack(w);
        const stacked = tf.stack([rows[2]!, rows[0]!, tf.mul(rows[1]!, rows[1]!)]);
        const strided = tf.slice(stacked, [0, 1], [3, 2]);
        const wide = tf.broadcastTo(tf.expandDims(tf.sum(strided, 0), 0), [3, 2]);
        return tf.sum(tf.sin(tf.mul(wide, tf.onesLike(wide))));
      });
    },
  },
  {
    name: 'sqrt, reciprocal',
    group: 'ops',
    build() {
      const w = variable(tf.tidy(() => tf.add(tf.abs(seeded([6], 8)), 0.5)));
      return problem([w], [], () => tf.sum(tf.add(tf.sqrt(w), tf.reciprocal(tf.add(w, 1)))));
    },
  },
  {
    name: 'tile (several repetitions per axis, as layer norm broadcasts gamma)',
    group: 'ops',
    build() {
      const w = variable(seeded([1, 2, 3], 9, 0.7));
      return problem([w], [], () =>
        tf.sum(tf.sin(tf.mul(tf.tile(w, [3, 2, 2]), tf.tile(w, [3, 2, 2])))),
      );
    },
  },
];
