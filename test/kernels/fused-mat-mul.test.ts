import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '../../src/index.js';
import { onBackend, maxAbsDiff, TEST_BACKENDS } from '../helpers.js';

/** fused.matMul must equal matMul + bias + activation, whatever the transposes and batch. */
for (const backend of TEST_BACKENDS) {
  describe(`fused.matMul on ${backend}`, () => {
    before(() => onBackend(backend));

    const activations = [
      'linear',
      'relu',
      'elu',
      'sigmoid',
      'leakyrelu',
      'prelu',
      'relu6',
    ] as const;
    const layouts = [
      { batch: [], transposeA: false, transposeB: false },
      { batch: [], transposeA: true, transposeB: false },
      { batch: [], transposeA: false, transposeB: true },
      { batch: [2], transposeA: true, transposeB: true },
      { batch: [3], transposeA: false, transposeB: false },
    ];
    for (const { batch, transposeA, transposeB } of layouts) {
      for (const activation of activations) {
        it(`batch [${batch}], transposeA ${transposeA}, transposeB ${transposeB}, ${activation}`, () => {
          const before = tf.memory().numTensors;
          tf.tidy(() => {
            const [m, k, n] = [3, 5, 4];
            const a = tf.randomNormal(
              [...batch, ...(transposeA ? [k, m] : [m, k])],
              0,
              1,
              'float32',
              1,
            );
            const b = tf.randomNormal(
              [...batch, ...(transposeB ? [n, k] : [k, n])],
              0,
              1,
              'float32',
              2,
            );
            const bias = tf.tensor1d([10, -20, 30, -40]);
            const alpha = tf.tensor1d([0.1, 0.2, 0.3, 0.4]);
            const fused = tf.fused.matMul({
              a,
              b,
              transposeA,
              transposeB,
              bias,
              activation,
              preluActivationWeights: activation === 'prelu' ? alpha : undefined,
              leakyreluAlpha: 0.3,
            });
            const z = tf.add(tf.matMul(a, b, transposeA, transposeB), bias);
            const expected = {
              linear: () => z,
              relu: () => tf.relu(z),
              elu: () => tf.elu(z),
              sigmoid: () => tf.sigmoid(z),
              leakyrelu: () => tf.leakyRelu(z, 0.3),
              prelu: () => tf.prelu(z, alpha),
              relu6: () => tf.relu6(z),
            }[activation]();
            assert.deepEqual(fused.shape, expected.shape);
            assert.ok(
              maxAbsDiff(fused, expected) < 1e-4,
              `max diff ${maxAbsDiff(fused, expected)}`,
            );
          });
          assert.equal(tf.memory().numTensors, before);
        });
      }
    }
  });
}
