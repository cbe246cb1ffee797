/**
 * AdaHessian refuses an update that would make weights or state non-finite (all variables or
 * none), on the tensor ops and on the fused cpu update; and applyGradientsWithHessian matches
 * its state to variables by name, whatever the order of the list.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { AdaHessian, NonFiniteError } from '../../src/index.js';
import { cpuAdaHessianUpdate } from '../../src/native/adahessian-update.js';
import { installFusedAdaHessianUpdate } from '../../src/optimizers/fused-update.js';
import { onBackend } from '../helpers.js';

async function snapshot(opt: AdaHessian, vars: tf.Variable[]): Promise<unknown> {
  const state = await opt.getWeights();
  const result = {
    iterations: opt.iterations,
    hessianUpdates: opt.hessianUpdateCount,
    state: state.map((s) => [s.name, Array.from(s.tensor.dataSync())]),
    weights: vars.map((v) => Array.from(v.dataSync())),
  };
  tf.dispose(state.map((s) => s.tensor).filter((t) => !(t instanceof tf.Variable)));
  return result;
}

/** sum(c * a) + sum((b - 1)^2): `a` has a zero Hessian, `b` a positive one. */
function mixedLoss(a: tf.Variable, b: tf.Variable): () => tf.Scalar {
  return () =>
    tf.tidy(
      () =>
        tf.add(
          tf.sum(tf.mul(tf.tensor1d([1, -2, 3]), a)),
          tf.sum(tf.square(tf.sub(b, 1))),
        ) as tf.Scalar,
    );
}

for (const path of ['tensor ops', 'fused cpu update'] as const) {
  describe(`AdaHessian refuses non-finite updates (${path})`, () => {
    let uninstall: (() => void) | undefined;
    before(async () => {
      await onBackend('cpu');
      if (path === 'fused cpu update') {
        uninstall = installFusedAdaHessianUpdate('cpu', cpuAdaHessianUpdate);
      }
    });
    after(() => uninstall?.());

    it('epsilon 0 over a zero Hessian diagonal: refused on that step, nothing updated, no leak', async () => {
      const a = tf.variable(tf.tensor1d([0.5, -1, 2]));
      const b = tf.variable(tf.tensor1d([3, 4, 5]));
      const opt = new AdaHessian({ epsilon: 0, seed: 3 });
      const before = await snapshot(opt, [a, b]);
      const tensors = tf.memory().numTensors;
      assert.throws(
        () => opt.minimize(mixedLoss(a, b), false, [a, b]),
        (e: Error) =>
          e instanceof NonFiniteError &&
          new RegExp(`the updated weights of '${a.name}' has 3 non-finite entries`).test(
            e.message,
          ) &&
          /nothing was updated/.test(e.message),
      );
      // b's update was finite, but a refused step changes no variable and creates no state.
      assert.deepEqual(await snapshot(opt, [a, b]), before);
      assert.equal(tf.memory().numTensors, tensors);
      opt.dispose();
      tf.dispose([a, b]);
    });

    it('a learning rate of 1e300: refused, weights and state as before the step', async () => {
      const w = tf.variable(tf.tensor1d([0.5, -1, 2]));
      const opt = new AdaHessian({ learningRate: 0.1, seed: 5 });
      const loss = () => tf.tidy(() => tf.sum(tf.square(tf.sub(w, 1))) as tf.Scalar);
      opt.minimize(loss, false, [w]);
      const before = await snapshot(opt, [w]);
      const huge = new AdaHessian({ learningRate: 1e300, seed: 5 });
      await huge.setWeights(await opt.getWeights());
      const hugeBefore = await snapshot(huge, [w]);
      assert.throws(() => huge.minimize(loss, false, [w]), /updated weights .* non-finite/);
      assert.deepEqual(await snapshot(huge, [w]), hugeBefore);
      assert.deepEqual(
        ((await snapshot(opt, [w])) as { weights: unknown }).weights,
        (before as { weights: unknown }).weights,
      );
      opt.dispose();
      huge.dispose();
      w.dispose();
    });
  });
}

describe('applyGradientsWithHessian matches state by variable name', () => {
  before(() => onBackend('cpu'));

  it('the order of the list does not matter (same-shape variables keep their own moments)', () => {
    const run = (reorderSecondStep: boolean) => {
      const a = tf.variable(tf.tensor1d([1, 2, 3]));
      const b = tf.variable(tf.tensor1d([-1, 0.5, 4]));
      const opt = new AdaHessian({ learningRate: 0.1 });
      const grads = [
        { name: a.name, tensor: tf.tensor1d([0.3, -0.2, 0.1]) },
        { name: b.name, tensor: tf.tensor1d([-5, 7, 2]) },
      ];
      const diag = [
        { name: a.name, tensor: tf.tensor1d([0.5, 0.25, 2]) },
        { name: b.name, tensor: tf.tensor1d([9, 3, 1]) },
      ];
      opt.applyGradientsWithHessian(grads, diag);
      const order = reorderSecondStep ? [1, 0] : [0, 1];
      opt.applyGradientsWithHessian(
        order.map((i) => grads[i]!),
        order.map((i) => diag[i]!),
      );
      const result = [Array.from(a.dataSync()), Array.from(b.dataSync())];
      opt.dispose();
      tf.dispose([a, b, ...grads.map((g) => g.tensor), ...diag.map((d) => d.tensor)]);
      return result;
    };
    assert.deepEqual(run(true), run(false));
  });

  it('restored state still goes to the variables by position on the first step', async () => {
    const make = () => [tf.variable(tf.tensor1d([1, 2])), tf.variable(tf.tensor1d([3, 4]))];
    const loss = (vs: tf.Variable[]) => () =>
      tf.tidy(
        () => tf.add(tf.sum(tf.square(vs[0]!)), tf.sum(tf.mul(tf.square(vs[1]!), 3))) as tf.Scalar,
      );
    const original = make();
    const opt = new AdaHessian({ seed: 2 });
    opt.minimize(loss(original), false, original);
    const copy = original.map((v) => tf.variable(v.clone()));
    const restored = new AdaHessian({ seed: 2 });
    await restored.setWeights(await opt.getWeights());
    opt.minimize(loss(original), false, original);
    restored.minimize(loss(copy), false, copy);
    assert.deepEqual(
      copy.map((v) => Array.from(v.dataSync())),
      original.map((v) => Array.from(v.dataSync())),
    );
    opt.dispose();
    restored.dispose();
    tf.dispose([...original, ...copy]);
  });
});
