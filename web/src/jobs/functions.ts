/**
 * The 2-D test functions of the optimizer race, each written twice: with TensorFlow.js ops
 * (what the optimizers differentiate, twice for AdaHessian) and in plain numbers (only to draw
 * the contour background, so drawing costs no tensors).
 */
import * as tf from '@tensorflow/tfjs';

export type FunctionName = 'quadratic' | 'rosenbrock' | 'beale' | 'himmelblau';
export const FUNCTION_NAMES: readonly FunctionName[] = [
  'quadratic',
  'rosenbrock',
  'beale',
  'himmelblau',
];

export interface TestFunction {
  name: FunctionName;
  label: string;
  /** f at the point p = [x, y] (a variable of shape [2]), as a scalar tensor. */
  tensor: (p: tf.Tensor1D) => tf.Scalar;
  /** f(x, y) in plain numbers, for the contour plot. */
  value: (x: number, y: number) => number;
  start: [number, number];
  /** Global minima, marked on the plot. */
  minima: [number, number][];
  domain: { x: [number, number]; y: [number, number] };
}

// The quadratic's axes are rotated by 30 degrees so its Hessian is not diagonal: the
// Hutchinson diagonal then has off-diagonal noise to average out.
const ANGLE = Math.PI / 6;
const COS = Math.cos(ANGLE);
const SIN = Math.sin(ANGLE);
const EIGEN = [1, 25] as const;

function split(p: tf.Tensor1D): [tf.Tensor, tf.Tensor] {
  const [x, y] = tf.unstack(p);
  return [x!, y!];
}

export const FUNCTIONS: Readonly<Record<FunctionName, TestFunction>> = {
  quadratic: {
    name: 'quadratic',
    label: 'Rotated quadratic (condition number 25)',
    tensor: (p) =>
      tf.tidy(() => {
        const [x, y] = split(p);
        const u = tf.add(tf.mul(x, COS), tf.mul(y, SIN));
        const v = tf.sub(tf.mul(y, COS), tf.mul(x, SIN));
        return tf.mul(0.5, tf.add(tf.mul(EIGEN[0], tf.square(u)), tf.mul(EIGEN[1], tf.square(v))));
      }) as tf.Scalar,
    value: (x, y) => {
      const u = x * COS + y * SIN;
      const v = y * COS - x * SIN;
      return 0.5 * (EIGEN[0] * u * u + EIGEN[1] * v * v);
    },
    start: [-3.5, 1.5],
    minima: [[0, 0]],
    domain: { x: [-4, 4], y: [-3, 3] },
  },
  rosenbrock: {
    name: 'rosenbrock',
    label: 'Rosenbrock',
    tensor: (p) =>
      tf.tidy(() => {
        const [x, y] = split(p);
        return tf.add(tf.square(tf.sub(1, x)), tf.mul(100, tf.square(tf.sub(y, tf.square(x)))));
      }) as tf.Scalar,
    value: (x, y) => (1 - x) ** 2 + 100 * (y - x * x) ** 2,
    start: [-1.2, 1],
    minima: [[1, 1]],
    domain: { x: [-2, 2], y: [-1, 3] },
  },
  beale: {
    name: 'beale',
    label: 'Beale',
    tensor: (p) =>
      tf.tidy(() => {
        const [x, y] = split(p);
        const y2 = tf.square(y);
        const y3 = tf.mul(y2, y);
        const term = (c: number, yk: tf.Tensor) => tf.square(tf.add(tf.sub(c, x), tf.mul(x, yk)));
        return tf.addN([term(1.5, y), term(2.25, y2), term(2.625, y3)]);
      }) as tf.Scalar,
    value: (x, y) =>
      (1.5 - x + x * y) ** 2 + (2.25 - x + x * y * y) ** 2 + (2.625 - x + x * y * y * y) ** 2,
    start: [0.7, 1.4],
    minima: [[3, 0.5]],
    domain: { x: [-4.5, 4.5], y: [-4.5, 4.5] },
  },
  himmelblau: {
    name: 'himmelblau',
    label: 'Himmelblau (non-convex: four minima, a maximum, four saddles)',
    tensor: (p) =>
      tf.tidy(() => {
        const [x, y] = split(p);
        const a = tf.sub(tf.add(tf.square(x), y), 11);
        const b = tf.sub(tf.add(x, tf.square(y)), 7);
        return tf.add(tf.square(a), tf.square(b));
      }) as tf.Scalar,
    value: (x, y) => (x * x + y - 11) ** 2 + (x + y * y - 7) ** 2,
    start: [-0.4, -0.6],
    minima: [
      [3, 2],
      [-2.805118, 3.131312],
      [-3.77931, -3.283186],
      [3.584428, -1.848126],
    ],
    domain: { x: [-5, 5], y: [-5, 5] },
  },
};

export function functionByName(name: string): TestFunction {
  const f = (FUNCTIONS as Record<string, TestFunction | undefined>)[name];
  if (f === undefined) {
    throw new RangeError(
      `Unknown test function '${name}'; expected one of ${FUNCTION_NAMES.join(', ')}.`,
    );
  }
  return f;
}
