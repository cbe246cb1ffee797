/** Operations on flat float32 vectors ([n] tensors) and bases of them ([k, n] rows). */
import * as tf from '@tensorflow/tfjs';
import type { SeededRandom } from './random.js';

export function dot(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.sum(tf.mul(a, b)).dataSync()[0]!);
}

export function norm(a: tf.Tensor): number {
  return Math.sqrt(dot(a, a));
}

/** `count` Rademacher vectors of length n as rows of a [count, n] tensor. */
export function rademacherRows(rng: SeededRandom, count: number, n: number): tf.Tensor2D {
  return tf.tensor2d(rng.rademacher(count * n), [count, n]);
}

/** A random unit vector with normal entries. */
export function randomUnit(rng: SeededRandom, n: number): tf.Tensor1D {
  return tf.tidy(() => unit(tf.tensor1d(rng.normal(n))));
}

/** v / ||v|| (v itself is left alone). */
export function unit(v: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => tf.div(v, tf.norm(v)) as tf.Tensor1D);
}

/**
 * w minus its projection on the orthonormal rows of `basis`, done twice (classical
 * Gram-Schmidt twice is as accurate as modified Gram-Schmidt and needs two matrix products).
 */
export function orthogonalize(w: tf.Tensor1D, basis: tf.Tensor2D | null): tf.Tensor1D {
  if (basis == null || basis.shape[0] === 0) return w.clone();
  return tf.tidy(() => {
    let out: tf.Tensor = w;
    for (let pass = 0; pass < 2; pass++) {
      const coefficients = tf.matMul(basis, out.reshape([-1, 1])); // [k, 1]
      out = tf.sub(out, tf.matMul(coefficients, basis, true, false).reshape([-1]));
    }
    return out as tf.Tensor1D;
  });
}

/** The rows of `rows` made orthonormal in order; rows in the span of earlier ones are dropped. */
export function orthonormalRows(rows: tf.Tensor2D): tf.Tensor2D {
  const kept: tf.Tensor1D[] = [];
  let basis: tf.Tensor2D | null = null;
  const all = tf.unstack(rows) as tf.Tensor1D[];
  for (const row of all) {
    const originalNorm = norm(row);
    const w = orthogonalize(row, basis);
    const n = norm(w);
    if (n > 1e-5 * originalNorm && n > 0) {
      kept.push(tf.tidy(() => tf.div(w, n) as tf.Tensor1D));
      basis?.dispose();
      basis = tf.stack(kept) as tf.Tensor2D;
    }
    w.dispose();
  }
  tf.dispose([...all, ...kept]);
  return basis ?? (tf.zeros([0, rows.shape[1]]) as tf.Tensor2D);
}
