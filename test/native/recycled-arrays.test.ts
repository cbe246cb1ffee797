/**
 * Recycled arrays (src/native/recycled-arrays.ts): a disposed tensor's array is handed out
 * again only when nothing but our readers saw it (not after dataSync, a TF.js kernel's read,
 * or while another tensor or variable still holds the data), and AdaHessian and Adam (their
 * replayed step graphs and fused updates) trained with the native path reuse their arrays yet
 * give the same weights, bit for bit, as with new arrays, without ever writing into an array a
 * user read.
 */
import { afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { adahessian, buildMlp, softmaxCrossEntropy } from '../../src/index.js';
import { disableNativeKernels, enableNativeKernels } from '../../src/native/index.js';
import { onnxRuntimeUnavailableReason } from '../../src/native/onnx-runtime.js';
import {
  disableRecycledArrays,
  enableRecycledArrays,
  recycledArraysStatus,
  recycledTensor,
  recycledValues,
  takeArray,
} from '../../src/native/recycled-arrays.js';
import { onBackend } from '../helpers.js';

const unavailable = onnxRuntimeUnavailableReason();

/** A recycled tensor of `n` values 1..n, and its array. */
function made(n: number): { t: tf.Tensor; values: Float32Array } {
  const values = takeArray(n);
  for (let i = 0; i < n; i++) values[i] = i + 1;
  return { t: recycledTensor(values, [n]), values };
}

describe('recycled arrays (cpu)', () => {
  before(async () => {
    await onBackend('cpu');
  });
  afterEach(() => disableRecycledArrays());

  it('hands an unseen array out again once its data is deleted', () => {
    enableRecycledArrays();
    const { t, values } = made(7);
    // Our own readers do not mark it.
    assert.equal(recycledValues(tf.backend(), t.dataId), values);
    t.dispose();
    assert.equal(takeArray(7), values);
    assert.notEqual(takeArray(7), values);
  });

  it('never hands out an array that was read (dataSync, a kernel) or whose data is still held', () => {
    enableRecycledArrays();
    const a = made(5);
    assert.deepEqual(Array.from(a.t.dataSync()), [1, 2, 3, 4, 5]);
    a.t.dispose();
    const b = made(5);
    tf.tidy(() => tf.add(b.t, 1)).dispose();
    b.t.dispose();
    const c = made(5);
    const v = tf.variable(tf.zeros([5]));
    v.assign(c.t);
    c.t.dispose(); // the variable still holds the data
    const taken = takeArray(5);
    assert.ok(![a.values, b.values, c.values].includes(taken));
    v.dispose(); // now deleted, never read by anyone else
    assert.equal(takeArray(5), c.values);
    assert.equal(recycledArraysStatus()!.seenAndKept, 2);
  });

  it('makes plain tensors when off', () => {
    const { t, values } = made(3);
    assert.equal(recycledValues(tf.backend(), t.dataId), null);
    t.dispose();
    assert.notEqual(takeArray(3), values);
    assert.equal(recycledArraysStatus(), null);
  });
});

describe(
  'recycled arrays in AdaHessian and Adam steps (cpu + native)',
  { skip: unavailable || false },
  () => {
    before(async () => {
      await onBackend('cpu');
    });

    /**
     * AdaHessian (or tf.train.adam: its first-order step graph and fused update) on a small MLP
     * through the native path (step graphs replay), `steps` steps.
     */
    function train(recycle: boolean, steps: number, peekAt: number, useAdam = false) {
      const previous = process.env['ADAHESSIAN_RECYCLED_ARRAYS'];
      process.env['ADAHESSIAN_RECYCLED_ARRAYS'] = recycle ? '1' : '0';
      try {
        enableNativeKernels();
      } finally {
        if (previous == null) delete process.env['ADAHESSIAN_RECYCLED_ARRAYS'];
        else process.env['ADAHESSIAN_RECYCLED_ARRAYS'] = previous;
      }
      const tensorsBefore = tf.memory().numTensors;
      const model = buildMlp({ seed: 4, inputShape: [12], hidden: 10, classes: 5 });
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const opt = useAdam ? tf.train.adam(0.01) : adahessian({ learningRate: 0.05, seed: 2 });
      const x = tf.randomNormal([6, 12], 0, 1, 'float32', 30);
      const y = tf.tidy(() => tf.oneHot(tf.randomUniform([6], 0, 5, 'int32', 40), 5));
      // A user's read mid-run: the array dataSync gave must never change afterwards.
      let peeked: { array: Float32Array; copy: Float32Array } | null = null;
      for (let s = 0; s < steps; s++) {
        opt.minimize(() => softmaxCrossEntropy(y, model.apply(x) as tf.Tensor), false, vars);
        if (s === peekAt) {
          const array = vars[0]!.dataSync() as Float32Array;
          peeked = { array, copy: array.slice() };
        }
      }
      const weights = vars.map((v) => Array.from(v.dataSync()));
      const reused = recycledArraysStatus()?.reused ?? 0;
      tf.dispose([x, y]);
      opt.dispose();
      model.dispose();
      disableNativeKernels();
      assert.equal(tf.memory().numTensors, tensorsBefore);
      return { weights, reused, peeked: peeked! };
    }

    it('reuses arrays and gives the weights of new arrays, bit for bit; a read array stays as read', () => {
      const plain = train(false, 12, 5);
      const recycled = train(true, 12, 5);
      assert.equal(plain.reused, 0);
      // Probes, the graph's outputs and w, m, v of the replayed steps.
      assert.ok(recycled.reused > 40, `reused ${recycled.reused}`);
      assert.deepEqual(recycled.weights, plain.weights);
      assert.deepEqual(recycled.peeked.array, recycled.peeked.copy);
    });

    it("Adam's replayed steps reuse the gradients' and w, m, v's arrays, bits unchanged; a read array stays as read", () => {
      const plain = train(false, 12, 5, true);
      const recycled = train(true, 12, 5, true);
      assert.equal(plain.reused, 0);
      // The graph's gradient and the update's w, m, v of 4 variables: 16 arrays a replayed step.
      assert.ok(recycled.reused > 100, `reused ${recycled.reused}`);
      assert.deepEqual(recycled.weights, plain.weights);
      assert.deepEqual(recycled.peeked.array, recycled.peeked.copy);
    });
  },
);
