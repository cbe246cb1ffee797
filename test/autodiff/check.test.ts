/**
 * runCase and runCaseAsync (one implementation, two ways of reading numbers back) give the same
 * result for a case that passes, one that misses the tolerance, one whose build throws and one
 * whose loss throws; each disposes its problem once and leaks no tensor.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { runCase, runCaseAsync } from '../../src/autodiff/check.js';
import type { SecondOrderCase } from '../../src/autodiff/cases/index.js';
import { useBackend } from '../../src/index.js';

/** sum(x * w^3): its Hessian is diagonal, 6 x w. `throwInLoss` makes the loss throw. */
function cubic(disposed: { count: number }, throwInLoss = false): SecondOrderCase {
  return {
    name: 'cubic',
    group: 'ops',
    build() {
      const w = tf.tidy(() => tf.variable(tf.tensor1d([0.5, -1, 2])));
      const x = tf.tensor1d([1, 2, -0.5]);
      return {
        vars: [w],
        lossFn: () => {
          if (throwInLoss) throw new RangeError('no loss today');
          return tf.sum(tf.mul(x, tf.pow(w, 3)));
        },
        dispose() {
          disposed.count++;
          tf.dispose([w, x]);
        },
      };
    },
  };
}

const throwingBuild: SecondOrderCase = {
  name: 'unbuildable',
  group: 'ops',
  build() {
    throw new TypeError('cannot build');
  },
};

describe('runCase and runCaseAsync', () => {
  before(async () => {
    await useBackend('cpu');
  });

  /** Both runs of a case; they must agree, dispose the problem `disposals` times, leak nothing. */
  const both = async (
    make: (disposed: { count: number }) => SecondOrderCase,
    tolerance: number,
    disposals = 1,
  ) => {
    const results = [];
    for (const run of [runCase, runCaseAsync]) {
      const disposed = { count: 0 };
      const tensors = tf.memory().numTensors;
      results.push(await run(make(disposed), 'cpu', tolerance));
      assert.equal(tf.memory().numTensors, tensors, `${run.name} leaked`);
      assert.equal(disposed.count, disposals, `${run.name} disposed the problem`);
    }
    assert.deepEqual(results[0], results[1], 'runCase and runCaseAsync differ');
    return results[0]!;
  };

  it('a case that passes, and the same case under a tolerance it misses', async () => {
    const ok = await both((d) => cubic(d), 1e-2);
    assert.equal(ok.pass, true);
    assert.ok(ok.relError < 1e-2, String(ok.relError));
    assert.ok(!('error' in ok));
    assert.equal(ok.backend, 'cpu');
    assert.ok(ok.kernels.includes('Pow'), 'the kernels on its second-order path');
    const strict = await both((d) => cubic(d), -1);
    assert.equal(strict.pass, false);
    assert.equal(strict.relError, ok.relError);
  });

  it('a throw in build or in the loss is a failed result with the error, not a throw', async () => {
    const unbuilt = await both(() => throwingBuild, 1e-2, 0);
    assert.equal(unbuilt.pass, false);
    assert.ok(Number.isNaN(unbuilt.relError));
    assert.equal(unbuilt.error, 'TypeError: cannot build');
    const lossless = await both((d) => cubic(d, true), 1e-2);
    assert.equal(lossless.pass, false);
    assert.ok(Number.isNaN(lossless.relError));
    assert.equal(lossless.error, 'RangeError: no loss today');
  });
});
