import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { weightsFinite } from '../../src/cli/finite-weights.js';
import { useBackend } from '../../src/index.js';
import { allFinite } from '../../src/optimizers/non-finite.js';
import {
  disableRecycledArrays,
  enableRecycledArrays,
  recycledTensor,
  takeArray,
} from '../../src/native/recycled-arrays.js';

describe('weightsFinite (the CLI check after a first-order step)', () => {
  it('agrees with allFinite: one NaN, Inf or -Inf anywhere in any tensor is found', async () => {
    for (const backend of ['cpu', 'wasm'] as const) {
      await useBackend(backend);
      const before = tf.memory().numTensors;
      // Sizes off a multiple of 4 too (the loop's four sums and its tail), and values whose
      // plain sum overflows although each is finite.
      const sizes = [1, 3, 4, 7, 1000, 1001];
      const finite = sizes.map((n, i) => tf.fill([n], i % 2 ? 3e38 : -1.5));
      assert.equal(weightsFinite(finite), true, backend);
      assert.equal(allFinite(finite), true, backend);
      for (const bad of [NaN, Infinity, -Infinity]) {
        for (const [t, n] of sizes.entries()) {
          for (const at of new Set([0, 1, 2, 3, n - 1].filter((k) => k < n))) {
            const values = new Float32Array(n).fill(0.5);
            values[at] = bad;
            const tensors = [...finite.slice(0, t), tf.tensor1d(values), ...finite.slice(t + 1)];
            const what = `${backend}: ${bad} at ${at} of ${n} in tensor ${t}`;
            assert.equal(weightsFinite(tensors), false, what);
            assert.equal(allFinite(tensors), false, what);
            tensors[t]!.dispose();
          }
        }
      }
      tf.dispose(finite);
      assert.equal(weightsFinite([]), true);
      assert.equal(tf.memory().numTensors, before, `${backend}: tensors leaked`);
    }
  });

  it('reads recycled weights without keeping their arrays from reuse (and still finds a NaN)', async () => {
    await useBackend('cpu');
    enableRecycledArrays();
    try {
      for (const bad of [null, NaN]) {
        const values = takeArray(9).fill(0.25);
        if (bad != null) values[4] = bad;
        const t = recycledTensor(values, [9]);
        assert.equal(weightsFinite([t]), bad == null);
        t.dispose();
        // A dataSync would have marked the array seen; unmarked, it is handed out again.
        assert.equal(takeArray(9), values);
      }
    } finally {
      disableRecycledArrays();
    }
  });
});
