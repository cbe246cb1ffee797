/**
 * Spatial averaging over the right axes in TF.js's channels-last layouts. Each D is built so
 * that every (in, out) channel pair has its own value pattern: averaging over the channel
 * axes instead of the spatial ones would mix them and fail these tests.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  AdaHessian,
  spatialAverage,
  averagingModeFor,
  validateSpatialAveraging,
} from '../../src/index.js';
import { onBackend, TEST_BACKENDS } from '../helpers.js';

/** D[p..., i, o] = (i + 1) * 10 + (o + 1) + 0.5 * (spatial position index): channel-distinct. */
function channelLastTensor(shape: number[]): { d: tf.Tensor; expected: number[] } {
  const [nIn, nOut] = shape.slice(-2) as [number, number];
  const positions = shape.slice(0, -2).reduce((a, b) => a * b, 1);
  const values: number[] = [];
  const expected: number[] = [];
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < nIn; i++) {
      for (let o = 0; o < nOut; o++) {
        values.push((i + 1) * 10 + (o + 1) + 0.5 * p);
        expected.push((i + 1) * 10 + (o + 1) + (0.5 * (positions - 1)) / 2);
      }
    }
  }
  return { d: tf.tensor(values, shape), expected };
}

function assertClose(actual: tf.Tensor, expected: number[]): void {
  const a = actual.dataSync();
  assert.equal(a.length, expected.length);
  expected.forEach((e, k) => assert.ok(Math.abs(a[k]! - e) < 1e-4, `entry ${k}: ${a[k]} vs ${e}`));
}

for (const backend of TEST_BACKENDS) {
  describe(`spatial averaging on ${backend}`, () => {
    before(() => onBackend(backend));

    it('conv2d kernel [kh, kw, in, out]: mean over kh, kw, one value per (in, out)', () => {
      const { d, expected } = channelLastTensor([3, 3, 4, 5]);
      const out = spatialAverage(d, averagingModeFor(4));
      assertClose(out, expected);
      tf.dispose([d, out]);
    });

    it('depthwise kernel [kh, kw, in, multiplier]: mean over kh, kw', () => {
      const { d, expected } = channelLastTensor([5, 5, 3, 2]);
      const out = spatialAverage(d, 'spatial');
      assertClose(out, expected);
      tf.dispose([d, out]);
    });

    it('conv1d kernel [k, in, out]: mean over k', () => {
      const { d, expected } = channelLastTensor([4, 2, 3]);
      const out = spatialAverage(d, averagingModeFor(3));
      assertClose(out, expected);
      tf.dispose([d, out]);
    });

    it('dense kernels and biases are left alone by default', () => {
      assert.equal(averagingModeFor(1), 'none');
      assert.equal(averagingModeFor(2), 'none');
      const d = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
      const out = spatialAverage(d, averagingModeFor(2));
      assertClose(out, [1, 2, 3, 4, 5, 6]);
      tf.dispose([d, out]);
    });

    it('blocks run along the input axis of a dense kernel [in, out], per output unit', () => {
      // in = 5, out = 2, block 2: rows {0,1}, {2,3}, {4} averaged within each column.
      const d = tf.tensor2d([1, 10, 3, 30, 5, 50, 7, 70, 9, 90], [5, 2]);
      const out = spatialAverage(d, { blockSize: 2 });
      assertClose(out, [2, 20, 2, 20, 6, 60, 6, 60, 9, 90]);
      tf.dispose([d, out]);
    });

    it('blocks on a bias average consecutive entries', () => {
      const d = tf.tensor1d([1, 3, 5, 7, 9, 11]);
      const out = spatialAverage(d, { blockSize: 3 });
      assertClose(out, [3, 3, 3, 9, 9, 9]);
      tf.dispose([d, out]);
    });

    it('the optimizer averages a conv kernel over space, not channels', () => {
      // One step with betas 0, k = 1, eps 0: update = g / D, so with g = 1 the step shows D.
      const { d, expected } = channelLastTensor([2, 2, 3, 2]);
      const w = tf.variable(tf.zeros([2, 2, 3, 2]));
      const opt = new AdaHessian({ learningRate: 1, beta1: 0, beta2: 0, epsilon: 0 });
      const g = tf.onesLike(w);
      opt.applyGradientsWithHessian([{ name: w.name, tensor: g }], [{ name: w.name, tensor: d }]);
      assertClose(
        tf.tidy(() => tf.div(-1, w)),
        expected,
      );
      tf.dispose([d, w, g]);
      opt.dispose();
    });
  });
}

describe('spatial averaging config', () => {
  it('rejects bad modes with messages that name them', () => {
    assert.throws(() => validateSpatialAveraging({ 2: 'spatial' }), /rank 3 or more/);
    assert.throws(() => validateSpatialAveraging({ 2: { blockSize: 0 } }), /blockSize/);
    assert.throws(() => validateSpatialAveraging({ 2: 'rows' }), /spatialAveraging\[2\]/);
    assert.throws(() => validateSpatialAveraging({ x: 'none' }), /ranks/);
    assert.throws(() => new AdaHessian({ spatialAveraging: { 1: 'spatial' } }), /rank 3 or more/);
  });
});
