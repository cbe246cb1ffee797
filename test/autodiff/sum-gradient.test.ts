import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '../../src/index.js';
import { gradAndHvp } from '../../src/autodiff/hvp.js';
import { maxAbsDiff, onBackend, TEST_BACKENDS } from '../helpers.js';

for (const backend of TEST_BACKENDS) {
  describe(`Sum gradient on ${backend}`, () => {
    before(() => onBackend(backend));

    it('broadcasts dy over the reduced axes (with and without keepDims, all axes, none)', () => {
      const x = tf.randomNormal([3, 4, 5], 0, 1, 'float32', 1);
      const cases: [number[] | undefined, boolean][] = [
        [[0, 2], false],
        [[1], true],
        [undefined, false],
        [[], false],
      ];
      for (const [axes, keepDims] of cases) {
        const w = tf.randomNormal(tf.sum(x, axes, keepDims).shape, 0, 1, 'float32', 2);
        const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.sum(t, axes, keepDims), w)))(x);
        // Element [i,j,k] of the gradient is w at the kept coordinates.
        const reduced = axes === undefined ? [0, 1, 2] : axes;
        const wKept = tf.reshape(
          w,
          x.shape.map((d, i) => (reduced.includes(i) ? 1 : d)),
        );
        const expected = tf.mul(wKept, tf.onesLike(x));
        assert.deepEqual(g.shape, x.shape);
        assert.equal(maxAbsDiff(g, expected), 0, `axes ${String(axes)} keepDims ${keepDims}`);
        tf.dispose([w, g, wKept, expected]);
      }
      x.dispose();
    });

    it('builds no ones tensor and no product, and the HVP through it is right', async () => {
      const x = tf.variable(tf.randomNormal([8, 6, 6, 4], 0, 1, 'float32', 3));
      const b = tf.variable(tf.randomNormal([4], 0, 1, 'float32', 4));
      // loss = sum((sum_{n,h,w}(x * b))^2): the bias-gradient shape a second-order sweep sees.
      const loss = () => tf.sum(tf.square(tf.sum(tf.mul(x, b), [0, 1, 2]))) as tf.Scalar;
      const profile = await tf.profile(() => {
        const g = tf.grad((t: tf.Tensor) => tf.sum(tf.sum(t, [0, 1, 2])))(x);
        g.dispose();
      });
      assert.equal(profile.kernels.filter((k) => k.name === 'Fill').length, 0);
      assert.equal(profile.kernels.filter((k) => k.name === 'Multiply').length, 0);
      const before = tf.memory().numTensors;
      const vb = tf.randomNormal([4], 0, 1, 'float32', 5);
      const vx = tf.zerosLike(x);
      const { loss: l, grads, hvp } = gradAndHvp(loss, [x, b], [vx, vb]);
      // With v only on b: loss = sum_c (b_c s_c)^2 with s_c = sum of x[..., c], so
      // H_bb = diag(2 s_c^2) and H v = 2 s^2 v.
      const s = tf.sum(x, [0, 1, 2]);
      const expected = tf.tidy(() => tf.mul(tf.mul(2, tf.square(s)), vb));
      const scale = tf.tidy(() => tf.max(tf.abs(expected)).dataSync()[0]!);
      assert.ok(maxAbsDiff(hvp[1]!, expected) < 1e-5 * (1 + scale));
      tf.dispose([l, ...grads, ...hvp, s, expected, vb, vx]);
      assert.equal(tf.memory().numTensors, before);
      tf.dispose([x, b]);
    });
  });
}
