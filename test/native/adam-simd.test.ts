/**
 * Adam's update as WebAssembly SIMD (src/native/adam-simd.ts) gives the JS loop's float32 bits:
 * over lengths around its lane width and chunk size, magnitudes from 1e-30 to 1e30 (subnormal
 * squares, overflowing ones), zeros and signed zeros; and tf.train.adam's applyGradients with the
 * native kernels gives the same weights and moments bit for bit with it and without it.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { adamSimd, type AdamScalars } from '../../src/native/adam-simd.js';
import { setAdamSimd } from '../../src/native/first-order-update.js';
import { disableNativeKernels, enableNativeKernels } from '../../src/native/index.js';
import { onBackend } from '../helpers.js';

const f = Math.fround;

/** first-order-update.ts's JS loop (the reference). */
function jsLoop(
  w: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  s: AdamScalars,
) {
  const n = w.length;
  const out = [new Float32Array(n), new Float32Array(n), new Float32Array(n)] as const;
  for (let j = 0; j < n; j++) {
    const gj = g[j]!;
    const mj = f(f(m[j]! * s.beta1) + f(gj * s.oneMinusBeta1));
    const vj = f(f(v[j]! * s.beta2) + f(f(gj * gj) * s.oneMinusBeta2));
    const denominator = f(f(Math.sqrt(f(vj / s.biasCorrection2))) + s.epsilon);
    out[0][j] = f(f(f(mj / s.biasCorrection1) / denominator) * s.negativeLearningRate) + w[j]!;
    out[1][j] = mj;
    out[2][j] = vj;
  }
  return out;
}

/** Deterministic values spread over magnitudes 1e-30..1e30, with zeros and signed zeros. */
function spread(n: number, seed: number, positive = false): Float32Array {
  let state = seed;
  const next = () => (state = (state * 1103515245 + 12345) >>> 0) / 2 ** 32;
  return Float32Array.from({ length: n }, (_, i) => {
    if (i % 17 === 0) return i % 34 === 0 ? 0 : -0;
    const magnitude = 10 ** (next() * 60 - 30);
    return positive ? magnitude : (next() < 0.5 ? -1 : 1) * magnitude;
  });
}

const scalars = (t: number, lr: number): AdamScalars => ({
  beta1: f(0.9),
  oneMinusBeta1: f(1 - 0.9),
  beta2: f(0.999),
  oneMinusBeta2: f(1 - 0.999),
  biasCorrection1: f(1 - f(0.9 ** t)),
  biasCorrection2: f(1 - f(0.999 ** t)),
  epsilon: f(1e-7),
  negativeLearningRate: f(-lr),
});

describe('Adam as WebAssembly SIMD', () => {
  before(async () => onBackend('cpu'));

  it('is available here (Node 20 has WebAssembly SIMD)', () => {
    assert.ok(adamSimd() != null);
  });

  for (const n of [1, 3, 4, 5, 31, 65536, 65536 * 2 + 3]) {
    it(`gives the JS loop's bits: ${n} elements`, () => {
      const simd = adamSimd()!;
      const [w, g, m] = [spread(n, 1), spread(n, 2), spread(n, 3)];
      const v = spread(n, 4, true);
      for (const s of [scalars(1, 0.001), scalars(7, 0.3)]) {
        const want = jsLoop(w, g, m, v, s);
        const got = [new Float32Array(n), new Float32Array(n), new Float32Array(n)] as const;
        simd.update(w, g, m, v, got[0], got[1], got[2], s);
        ['w', 'm', 'v'].forEach((what, k) => assert.deepEqual(got[k], want[k], what));
      }
    });
  }

  it('tf.train.adam with the native kernels: the same state bit for bit with and without it', () => {
    const run = (simd: boolean) => {
      setAdamSimd(simd);
      enableNativeKernels({ threads: 1, stepGraphs: false });
      try {
        const w = tf.variable(
          tf.randomNormal([70, 9], 0, 1, 'float32', 5),
          true,
          `adamSimd${simd}`,
        );
        const optimizer = tf.train.adam(0.01);
        for (let step = 0; step < 4; step++) {
          const grad = tf.randomNormal([70, 9], 0, 0.1, 'float32', 10 + step);
          optimizer.applyGradients([{ name: w.name, tensor: grad }]);
          grad.dispose();
        }
        const weights = w.dataSync().slice();
        const slots = (
          optimizer as unknown as { accumulatedSecondMoment: { variable: tf.Variable }[] }
        ).accumulatedSecondMoment.map((s) => s.variable.dataSync().slice());
        optimizer.dispose();
        w.dispose();
        return { weights, slots };
      } finally {
        disableNativeKernels();
        setAdamSimd(true);
      }
    };
    // TF.js's AdamOptimizer leaves one tensor behind on dispose; SIMD adds none.
    const start = tf.memory().numTensors;
    const withSimd = run(true);
    const afterSimd = tf.memory().numTensors;
    const without = run(false);
    assert.deepEqual(withSimd.weights, without.weights);
    assert.deepEqual(withSimd.slots, without.slots);
    assert.equal(afterSimd - start, tf.memory().numTensors - afterSimd);
  });
});
