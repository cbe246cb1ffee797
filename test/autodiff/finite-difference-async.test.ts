/**
 * The asynchronous finite-difference comparison (what checkSecondOrder runs, right on webgpu
 * whose synchronous reads can race) gives exactly the synchronous one's numbers, restores the
 * variables and leaks nothing, also when the product throws.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '../../src/index.js';
import {
  compareHvpWithFiniteDifferences,
  compareHvpWithFiniteDifferencesAsync,
} from '../../src/autodiff/finite-difference.js';
import { allSecondOrderCases } from '../../src/autodiff/cases/index.js';
import { onBackend } from '../helpers.js';

describe('compareHvpWithFiniteDifferencesAsync', () => {
  it('equals the synchronous comparison bit for bit on cpu, restoring the variables', async () => {
    await onBackend('cpu');
    const names = ['quadratic', 'tanh', 'conv2d valid'];
    const cases = allSecondOrderCases().filter((c) => names.some((n) => c.name.startsWith(n)));
    assert.ok(cases.length >= 3, cases.map((c) => c.name).join(', '));
    for (const c of cases) {
      const p = c.build();
      const before = tf.memory().numTensors;
      const start = p.vars.map((v) => Array.from(v.dataSync()));
      const sync = compareHvpWithFiniteDifferences(p.lossFn, p.vars);
      const async = await compareHvpWithFiniteDifferencesAsync(p.lossFn, p.vars);
      assert.deepEqual(async, sync, c.name);
      assert.ok(sync.relError < 1e-2 && sync.hvpNorm > 0, `${c.name}: ${sync.relError}`);
      assert.deepEqual(
        p.vars.map((v) => Array.from(v.dataSync())),
        start,
      );
      assert.equal(tf.memory().numTensors, before, `${c.name} leaks`);
      p.dispose();
    }
  });

  it('cleans up when the product throws', async () => {
    await onBackend('cpu');
    const w = tf.variable(tf.tensor1d([1, 2]));
    const before = tf.memory().numTensors;
    await assert.rejects(
      compareHvpWithFiniteDifferencesAsync(() => tf.sum(tf.cumsum(tf.square(w))) as tf.Scalar, [w]),
      /Cumsum/,
    );
    assert.equal(tf.memory().numTensors, before);
    assert.deepEqual(Array.from(w.dataSync()), [1, 2]);
    w.dispose();
  });
});
