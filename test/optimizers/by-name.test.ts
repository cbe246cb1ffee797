/**
 * optimizerByName's optimizers leave no tensor behind once disposed, after steps and a change
 * of learning rate (TF.js 4.22's own MomentumOptimizer leaks its learning-rate scalar).
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { OPTIMIZER_NAMES, optimizerByName, useBackend } from '../../src/index.js';
import { setLearningRate } from '../../src/optimizers/learning-rate.js';

describe('optimizerByName', () => {
  before(async () => {
    await useBackend('cpu');
  });

  for (const name of OPTIMIZER_NAMES) {
    it(`${name}: dispose frees everything the optimizer made`, () => {
      const w = tf.variable(tf.tensor1d([1, -2, 3]));
      const x = tf.tensor1d([0.5, 1, -1]);
      const before = tf.memory().numTensors;
      const optimizer = optimizerByName(name);
      for (let step = 0; step < 2; step++) {
        optimizer.minimize(() => tf.sum(tf.square(tf.mul(w, x))), true)?.dispose();
        setLearningRate(optimizer, 0.001 * (step + 1));
      }
      optimizer.dispose();
      assert.equal(tf.memory().numTensors, before, `${name} leaked tensors`);
      tf.dispose([w, x]);
    });
  }
});
