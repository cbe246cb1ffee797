/**
 * Mean's gradient (src/autodiff/gradients/mean.ts) is a broadcast of dy / n: bit for bit stock
 * TF.js's (dy * ones) / n, over several axis choices, and twice differentiable (the coverage
 * suite's batch-norm and model cases go through it).
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '../../src/index.js';
import { onBackend, TEST_BACKENDS } from '../helpers.js';

for (const backend of TEST_BACKENDS) {
  describe(`Mean gradient on ${backend}`, () => {
    before(() => onBackend(backend));

    it("equals stock TF.js's (dy * ones(x.shape)) / n exactly", () => {
      const x = tf.randomNormal([3, 4, 5], 0, 1, 'float32', 1);
      const cases: [number[] | undefined, boolean][] = [
        [[0, 2], false],
        [[1], true],
        [undefined, false],
        [[0, 1, 2], true],
      ];
      for (const [axes, keepDims] of cases) {
        const reduced = tf.mean(x, axes, keepDims);
        const w = tf.randomNormal(reduced.shape, 0, 1, 'float32', 2);
        const got = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.mean(t, axes, keepDims), w)))(x);
        const all = axes ?? [0, 1, 2];
        const n = all.reduce((p, a) => p * x.shape[a]!, 1);
        const expanded = tf.reshape(
          w,
          x.shape.map((d, i) => (all.includes(i) ? 1 : d)),
        );
        const stock = tf.div(tf.mul(expanded, tf.ones(x.shape)), n);
        assert.deepEqual(Array.from(got.dataSync()), Array.from(stock.dataSync()));
        tf.dispose([reduced, w, got, expanded, stock]);
      }
      x.dispose();
    });
  });
}
