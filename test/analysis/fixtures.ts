/** Problems with exactly known Hessians for the analysis tests. */
import * as tf from '@tensorflow/tfjs';
import { HessianOperator } from '../../src/analysis/index.js';
import { symmetricEigen } from '../../src/estimators/index.js';
import { randomOrthogonal } from '../estimators/problems.js';

export interface LeastSquares {
  vars: tf.Variable[];
  lossFn: () => tf.Scalar;
  /** The exact Hessian 2 X^T X / rows in float64 (row-major d x d). */
  hessian: Float64Array;
  dispose(): void;
}

/**
 * mean((X w - b)^2) over `rows` rows with w split into two variables, where X = U S V^T is
 * built so that H = 2 X^T X / rows has exactly the eigenvalues `spectrum`.
 */
export function leastSquares(
  spectrum: number[],
  rows: number,
  split: number,
  seed: number,
): LeastSquares {
  const d = spectrum.length;
  const u = randomOrthogonal(rows, seed);
  const v = randomOrthogonal(d, seed + 1);
  const sigma = spectrum.map((l) => Math.sqrt((l * rows) / 2));
  const x = new Float64Array(rows * d);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += u[i * rows + k]! * sigma[k]! * v[j * d + k]!;
      x[i * d + j] = s;
    }
  }
  const hessian = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += v[i * d + k]! * spectrum[k]! * v[j * d + k]!;
      hessian[i * d + j] = s;
    }
  }
  const X = tf.tensor2d(Float32Array.from(x), [rows, d]);
  const b = tf.randomNormal([rows, 1], 0, 1, 'float32', seed + 2);
  const w1 = tf.tidy(() =>
    tf.variable(tf.randomNormal([split, 1], 0, 1, 'float32', seed + 3), true, `ls_w1_${seed}`),
  );
  const w2 = tf.tidy(() =>
    tf.variable(tf.randomNormal([d - split], 0, 1, 'float32', seed + 4), true, `ls_w2_${seed}`),
  );
  const lossFn = () =>
    tf.tidy(() => {
      const w = tf.concat([w1, w2.reshape([-1, 1])], 0);
      return tf.mean(tf.squaredDifference(tf.matMul(X, w), b)) as tf.Scalar;
    });
  return { vars: [w1, w2], lossFn, hessian, dispose: () => tf.dispose([X, b, w1, w2]) };
}

/** The full Hessian of an operator assembled column by column from products, symmetrised. */
export async function assembleHessian(op: HessianOperator): Promise<Float64Array> {
  const n = op.size;
  const identity = tf.eye(n) as tf.Tensor2D;
  const columns = await op.matmat(identity);
  const h = Float64Array.from(columns.dataSync());
  tf.dispose([identity, columns]);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) {
      const m = (h[i * n + j]! + h[j * n + i]!) / 2;
      h[i * n + j] = m;
      h[j * n + i] = m;
    }
  }
  return h;
}

export function eigenvaluesByMagnitude(h: Float64Array, n: number): number[] {
  return Array.from(symmetricEigen(h, n).values).sort((a, b) => Math.abs(b) - Math.abs(a));
}

export function traceOf(h: Float64Array, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += h[i * n + i]!;
  return s;
}

/** A small tanh MLP as a tf.layers model (3 -> 6 tanh -> 2 linear), seeded. */
export function smallMlp(seed: number): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({
        units: 6,
        inputShape: [3],
        activation: 'tanh',
        kernelInitializer: tf.initializers.glorotNormal({ seed }),
        biasInitializer: tf.initializers.randomNormal({ seed: seed + 1, stddev: 0.5 }),
        name: `hidden_${seed}`,
      }),
      tf.layers.dense({
        units: 2,
        kernelInitializer: tf.initializers.glorotNormal({ seed: seed + 2 }),
        name: `out_${seed}`,
      }),
    ],
  });
}
