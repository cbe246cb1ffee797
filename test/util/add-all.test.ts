/**
 * addAll equals tf.addN bit for bit on cpu and wasm (same left-to-right order) for any count,
 * and never hands AddN more than 7 inputs (webgpu's AddN is silently wrong past that; the
 * browser check is test/browser/coverage-webgpu.browser.ts, whose model cases (coverage-suite.ts)
 * have 8 to 40 variables).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { addAll } from '../../src/util/add-all.js';
import { onBackend, TEST_BACKENDS } from '../helpers.js';

for (const backend of TEST_BACKENDS) {
  describe(`addAll on ${backend}`, () => {
    it('equals tf.addN bit for bit, 1 to 30 tensors, with no call above 7 inputs', async () => {
      await onBackend(backend);
      for (const n of [1, 2, 7, 8, 13, 14, 30]) {
        const ts = Array.from({ length: n }, (_, i) =>
          tf.randomNormal([5], 0, 1e3 ** (i % 3), 'float32', i),
        );
        const before = tf.memory().numTensors;
        const widest: number[] = [];
        // Partial sums are left to the caller's tidy, as inside gradAndHvp.
        const profile = await tf.profile(() => tf.tidy(() => void addAll(ts)));
        profile.kernels
          .filter((k) => k.name === 'AddN')
          .forEach((k) => widest.push(k.inputShapes.length));
        assert.ok(
          Math.max(0, ...widest) <= 7,
          `${n} tensors: AddN with ${Math.max(...widest)} inputs`,
        );
        const ours = tf.tidy(() => addAll(ts));
        const stock = tf.addN(ts);
        assert.deepEqual(Array.from(ours.dataSync()), Array.from(stock.dataSync()), `${n} tensors`);
        tf.dispose([ours, stock]);
        assert.equal(tf.memory().numTensors, before);
        tf.dispose(ts);
      }
      assert.throws(() => addAll([]), /no tensors/);
    });
  });
}
