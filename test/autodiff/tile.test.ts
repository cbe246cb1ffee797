import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '../../src/index.js';
import { maxAbsDiff, onBackend, TEST_BACKENDS } from '../helpers.js';

for (const backend of TEST_BACKENDS) {
  describe(`Tile gradient on ${backend}`, () => {
    before(() => onBackend(backend));

    it('equals the sum over repetitions, computed by hand', () => {
      const x = tf.randomNormal([2, 1, 3], 0, 1, 'float32', 1);
      const reps = [2, 4, 3];
      const dy = tf.randomNormal([4, 4, 9], 0, 1, 'float32', 2);
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.tile(t, reps), dy)))(x);
      const d = dy.arraySync() as number[][][];
      const expected = tf.buffer([2, 1, 3]);
      for (let i = 0; i < 4; i++)
        for (let j = 0; j < 4; j++)
          for (let k = 0; k < 9; k++) {
            expected.set(expected.get(i % 2, j % 1, k % 3) + d[i]![j]![k]!, i % 2, j % 1, k % 3);
          }
      const e = expected.toTensor();
      assert.ok(maxAbsDiff(g, e) < 1e-5);
      tf.dispose([x, dy, g, e]);
    });

    it('equals the sum over repetitions for rank 4 and 5 (rank 4: what tf.layers batch norm tiles)', () => {
      for (const [shape, reps] of [
        [
          [1, 2, 1, 4],
          [2, 3, 3, 1],
        ],
        [
          [2, 1, 3, 1, 2],
          [1, 3, 2, 2, 1],
        ],
      ] as [number[], number[]][]) {
        const x = tf.randomNormal(shape, 0, 1, 'float32', 4);
        const outShape = shape.map((s, i) => s * reps[i]!);
        const dy = tf.randomNormal(outShape, 0, 1, 'float32', 5);
        const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.tile(t, reps), dy)))(x);
        const expected = tf.buffer(shape);
        const d = dy.bufferSync();
        for (let flat = 0; flat < dy.size; flat++) {
          const at = d.indexToLoc(flat);
          const src = at.map((a, i) => a % shape[i]!);
          expected.set(expected.get(...src) + d.get(...at), ...src);
        }
        const e = expected.toTensor();
        assert.ok(maxAbsDiff(g, e) < 1e-5, `rank ${shape.length}`);
        tf.dispose([x, dy, g, e]);
      }
    });

    it('takes one Sum, not one Slice per repetition', async () => {
      const x = tf.randomNormal([1, 1, 8], 0, 1, 'float32', 3);
      const profile = await tf.profile(() => {
        const g = tf.grad((t: tf.Tensor) => tf.sum(tf.square(tf.tile(t, [16, 16, 1]))))(x);
        g.dispose();
      });
      const slices = profile.kernels.filter((k) => k.name === 'Slice').length;
      assert.equal(slices, 0);
      x.dispose();
    });
  });
}
