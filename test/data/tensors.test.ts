import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { batchCount, batches, seededPermutation, toImageTensors } from '../../src/index.js';
import { loadFashionMnistSlice } from '../../src/node.js';
import { onBackend, TEST_BACKENDS } from '../helpers.js';

/** x[i] = i (shape [n, 2]) and y[i] = 10 i, so a batch says which examples it holds. */
function indexed(n: number): { x: tf.Tensor2D; y: tf.Tensor1D } {
  const x = tf.tensor2d(
    Array.from({ length: n }, (_, i) => [i, i]),
    [n, 2],
  );
  const y = tf.tensor1d(Array.from({ length: n }, (_, i) => 10 * i));
  return { x, y };
}

/** Runs one epoch, disposing each batch, and returns the example indices per batch. */
function epoch(
  x: tf.Tensor2D,
  y: tf.Tensor1D,
  batchSize: number,
  options: Parameters<typeof batches>[3] = {},
): number[][] {
  const seen: number[][] = [];
  for (const batch of batches(x, y, batchSize, options)) {
    const xs = Array.from(batch.x.dataSync());
    const ys = Array.from(batch.y.dataSync());
    const ids = xs.filter((_, k) => k % 2 === 0);
    assert.deepEqual(
      ys,
      ids.map((i) => 10 * i),
      'x and y rows stay paired',
    );
    assert.deepEqual(batch.x.shape, [ids.length, 2]);
    seen.push(ids);
    tf.dispose([batch.x, batch.y]);
  }
  return seen;
}

for (const backend of TEST_BACKENDS) {
  describe(`toImageTensors and batches on ${backend}`, () => {
    before(() => onBackend(backend));

    it('scales bytes to [0, 1] and one-hot encodes labels', () => {
      const images = Uint8Array.of(0, 51, 255, 102, 0, 0, 0, 255);
      const { x, y } = toImageTensors(images, Uint8Array.of(3, 0), 2, 2, 2, { classes: 4 });
      assert.deepEqual(x.shape, [2, 2, 2, 1]);
      assert.equal(x.dtype, 'float32');
      const values = Array.from(x.dataSync());
      const expected = [0, 0.2, 1, 0.4, 0, 0, 0, 1];
      values.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-7, `x[${i}] = ${v}`));
      assert.deepEqual(y.shape, [2, 4]);
      assert.equal(y.dtype, 'float32');
      assert.deepEqual(Array.from(y.dataSync()), [0, 0, 0, 1, 1, 0, 0, 0]);
      tf.dispose([x, y]);
    });

    it('converts the Fashion-MNIST slice: [n, 28, 28, 1] in [0, 1], one-hot rows', () => {
      const set = loadFashionMnistSlice('test', { limit: 64 });
      const before = tf.memory().numTensors;
      const { x, y } = toImageTensors(set.images, set.labels, set.count, set.height, set.width);
      assert.equal(tf.memory().numTensors, before + 2, 'exactly x and y are left');
      assert.deepEqual(x.shape, [64, 28, 28, 1]);
      assert.deepEqual(y.shape, [64, 10]);
      const [min, max, rowSums, argmax] = tf.tidy(() => [
        x.min().dataSync()[0]!,
        x.max().dataSync()[0]!,
        Array.from(y.sum(1).dataSync()),
        Array.from(y.argMax(1).dataSync()),
      ]);
      assert.equal(min, 0);
      assert.equal(max, 1);
      assert.deepEqual(rowSums, new Array(64).fill(1));
      assert.deepEqual(argmax, Array.from(set.labels));
      tf.dispose([x, y]);
    });

    it('batches in order, with a smaller last batch unless dropRemainder', () => {
      const { x, y } = indexed(10);
      assert.deepEqual(epoch(x, y, 4), [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9],
      ]);
      assert.deepEqual(epoch(x, y, 4, { dropRemainder: true }), [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
      ]);
      assert.deepEqual(epoch(x, y, 20), [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]);
      assert.equal(batchCount(10, 4), 3);
      assert.equal(batchCount(10, 4, true), 2);
      tf.dispose([x, y]);
    });

    it('shuffles reproducibly: same seed same order, each example exactly once', () => {
      const { x, y } = indexed(23);
      const a = epoch(x, y, 5, { shuffle: true, seed: 7 });
      const b = epoch(x, y, 5, { shuffle: true, seed: 7 });
      const c = epoch(x, y, 5, { shuffle: true, seed: 8 });
      assert.deepEqual(a, b);
      assert.notDeepEqual(a.flat(), c.flat());
      assert.notDeepEqual(
        a.flat(),
        Array.from({ length: 23 }, (_, i) => i),
        'actually shuffled',
      );
      assert.deepEqual(
        a.flat().sort((p, q) => p - q),
        Array.from({ length: 23 }, (_, i) => i),
      );
      assert.deepEqual(
        a.map((batch) => batch.length),
        [5, 5, 5, 5, 3],
      );
      tf.dispose([x, y]);
    });

    it('leaks no tensors, also when the loop stops early, and leaves x and y alone', () => {
      const { x, y } = indexed(50);
      const before = tf.memory().numTensors;
      for (const shuffle of [false, true]) {
        epoch(x, y, 8, { shuffle, seed: 1 });
        assert.equal(tf.memory().numTensors, before, `full epoch, shuffle ${shuffle}`);
        for (const batch of batches(x, y, 8, { shuffle, seed: 1 })) {
          tf.dispose([batch.x, batch.y]);
          break;
        }
        assert.equal(tf.memory().numTensors, before, `early break, shuffle ${shuffle}`);
      }
      // Each live batch is exactly two tensors, owned by the caller.
      const iterator = batches(x, y, 8);
      const first = iterator.next();
      assert.equal(tf.memory().numTensors, before + 2);
      if (!first.done) tf.dispose([first.value.x, first.value.y]);
      iterator.return();
      assert.equal(tf.memory().numTensors, before);
      assert.equal(x.isDisposed, false);
      assert.equal(y.isDisposed, false);
      tf.dispose([x, y]);
    });
  });
}

describe('toImageTensors and batches: bad input', () => {
  before(() => onBackend('cpu'));

  it('names the problem', () => {
    const images = new Uint8Array(8);
    assert.throws(
      () => toImageTensors(images, Uint8Array.of(0, 1), 2, 2, 3),
      /2 images of 2x3x1 need 12 bytes, got 8/,
    );
    assert.throws(
      () => toImageTensors(images, Uint8Array.of(0), 2, 2, 2),
      /2 images need 2 labels, got 1/,
    );
    assert.throws(
      () => toImageTensors(images, Uint8Array.of(0, 12), 2, 2, 2),
      /label 12 at index 1 is not below 10 classes/,
    );
    assert.throws(() => toImageTensors(images, Uint8Array.of(0), 0, 2, 2), /count must be a positive integer, got 0/);
    const before = tf.memory().numTensors;
    const x = tf.zeros([4, 2]);
    const y = tf.zeros([3]);
    assert.throws(() => batches(x, y, 2).next(), /same first dimension, got x \[4, 2\] and y \[3\]/);
    assert.throws(() => batches(x, x, 0).next(), /batchSize must be a positive integer, got 0/);
    assert.throws(() => batches(x, x, 2, { shuffle: true, seed: NaN }).next(), /seed must be a finite number/);
    tf.dispose([x, y]);
    assert.equal(tf.memory().numTensors, before);
  });

  it('seededPermutation is a fixed permutation per seed', () => {
    const p = seededPermutation(1000, 123);
    assert.deepEqual(p, seededPermutation(1000, 123));
    assert.deepEqual(
      Array.from(p).sort((a, b) => a - b),
      Array.from({ length: 1000 }, (_, i) => i),
    );
    // Pinned so that a change of generator (which would change every shuffled run) is noticed.
    assert.deepEqual(Array.from(seededPermutation(8, 1)), PINNED_PERMUTATION_8_SEED_1);
  });
});

const PINNED_PERMUTATION_8_SEED_1 = [2, 1, 6, 7, 4, 3, 0, 5];
