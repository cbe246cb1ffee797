/**
 * The coverage table's promise, as a test: every case passes its finite-difference check on
 * every backend that claims it, and every kernel we list as verified is on the second-order
 * path of at least one case (so no claim stands without a check behind it).
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { checkSecondOrder, secondOrderVerifiedKernels } from '../../src/index.js';
import { onBackend, TEST_BACKENDS } from '../helpers.js';

for (const backend of TEST_BACKENDS) {
  describe(`coverage cases on ${backend}`, () => {
    before(() => onBackend(backend));

    it('all pass, exercise every verified kernel, and leak nothing', async () => {
      const before = tf.memory().numTensors;
      const results = await checkSecondOrder();
      assert.equal(tf.memory().numTensors, before, 'tensors leaked by the cases');
      const failing = results
        .filter((r) => !r.pass)
        .map((r) => `${r.name}: ${r.error ?? r.relError}`);
      assert.deepEqual(failing, []);
      const exercised = new Set(results.flatMap((r) => r.kernels));
      // A kernel of ours registered on other backends only (ReluGrad: cpu) is checked there.
      const elsewhereOnly = (k: string) =>
        tf.getKernel(k, backend) == null &&
        ['cpu', 'wasm'].some((b) => b !== backend && tf.getKernel(k, b) != null);
      const unexercised = secondOrderVerifiedKernels().filter(
        (k) => !exercised.has(k) && !elsewhereOnly(k),
      );
      assert.deepEqual(unexercised, [], 'verified kernels that no case exercises');
      assert.ok(results.length >= 80, `only ${results.length} cases ran`);
    });
  });
}
