/**
 * Learning-rate schedules (their values at chosen steps, worked out by hand) and
 * setLearningRate on every optimizer the project offers: after setting rate b on an optimizer
 * built with rate a, its step equals that of an optimizer built with b.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { OPTIMIZER_NAMES, optimizerByName, useBackend } from '../../src/index.js';
import { scheduleFactor, setLearningRate } from '../../src/optimizers/learning-rate.js';

const close = (a: number, b: number, tol = 1e-12) =>
  assert.ok(Math.abs(a - b) <= tol, `${a} is not within ${tol} of ${b}`);

describe('learning-rate schedules', () => {
  it('warm-up rises linearly to the base rate, then each shape takes over', () => {
    const o = { warmupSteps: 4, totalSteps: 20 };
    for (const name of ['constant', 'step', 'cosine', 'inverse-sqrt'] as const) {
      assert.deepEqual(
        [1, 2, 3, 4].map((t) => scheduleFactor(name, t, o)),
        [0.25, 0.5, 0.75, 1],
        name,
      );
    }
    assert.equal(scheduleFactor('constant', 20, o), 1);
    // inverse-sqrt: sqrt(4 / t) after the warm-up, continuous at its end.
    close(scheduleFactor('inverse-sqrt', 5, o), Math.sqrt(4 / 5));
    close(scheduleFactor('inverse-sqrt', 16, o), 0.5);
    // cosine: 1 at the first step after the warm-up, 0.5 halfway through the rest.
    close(scheduleFactor('cosine', 5, o), 1);
    close(scheduleFactor('cosine', 5 + 8, o), 0.5);
    close(scheduleFactor('cosine', 20, o), 0.5 * (1 + Math.cos((Math.PI * 15) / 16)));
  });

  it('step decays x0.1 from half the steps and x0.01 from three quarters', () => {
    const o = { totalSteps: 8 };
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 8].map((t) => scheduleFactor('step', t, o)),
      [1, 1, 1, 1, 0.1, 0.1, 0.1 * 0.1, 0.1 * 0.1],
    );
  });

  it('inverse-sqrt without a warm-up is 1 / sqrt(step); bad steps are refused', () => {
    close(scheduleFactor('inverse-sqrt', 9, { totalSteps: 10 }), 1 / 3);
    assert.throws(() => scheduleFactor('constant', 0, { totalSteps: 10 }), /step must be/);
    assert.throws(
      () => scheduleFactor('nope' as never, 1, { totalSteps: 10 }),
      /Unknown learning-rate schedule 'nope'/,
    );
  });
});

describe('setLearningRate', () => {
  before(async () => {
    await useBackend('cpu');
  });

  for (const name of OPTIMIZER_NAMES) {
    it(`${name}: a rate set later gives the step of an optimizer built with it, twice`, () => {
      const start = tf.tensor1d([0.5, -1.5, 2]);
      const target = tf.tensor1d([1, 2, -1]);
      const run = (build: number, use: number) => {
        const w = tf.variable(start);
        const opt = optimizerByName(name, build, { adahessian: { seed: 3 } });
        for (let i = 0; i < 2; i++) {
          setLearningRate(opt, use * (i + 1)); // a rate that changes from step to step
          opt.minimize(() => tf.sum(tf.pow(tf.sub(w, target), 4)) as tf.Scalar);
        }
        const value = Array.from(w.dataSync());
        opt.dispose();
        w.dispose();
        return value;
      };
      run(0.5, 0.01); // first use: kernels and their cached constants
      const before = tf.memory().numTensors;
      const reset = run(0.5, 0.01);
      const built = run(0.01, 0.01);
      const plain = run(0.5, 0.5);
      // optimizerByName('momentum') also frees the scalar rate TF.js 4.22's
      // MomentumOptimizer.dispose() leaves behind, so every optimizer leaks nothing.
      assert.equal(tf.memory().numTensors - before, 0, 'no tensors leaked');
      assert.deepEqual(reset, built);
      assert.notDeepEqual(reset, plain, 'the rate set must matter');
      start.dispose();
      target.dispose();
    });
  }

  it('refuses a negative or non-finite rate and an object without a rate', () => {
    const opt = tf.train.adam(0.1);
    assert.throws(() => setLearningRate(opt, -1), /expected a finite number >= 0, got -1/);
    assert.throws(() => setLearningRate(opt, NaN), /got NaN/);
    assert.equal((opt as unknown as { learningRate: number }).learningRate, 0.1);
    opt.dispose();
    assert.throws(() => setLearningRate({}, 0.1), /Object has no learning rate/);
  });
});
