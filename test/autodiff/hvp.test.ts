import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { gradAndHvp, gradAndHvpMany, HvpInputError } from '../../src/index.js';
import { maxAbs, maxAbsDiff, onBackend, TEST_BACKENDS } from '../helpers.js';

for (const backend of TEST_BACKENDS) {
  describe(`gradAndHvp on ${backend}`, () => {
    before(() => onBackend(backend));

    it('equals A v for 0.5 w^T A w (A symmetric)', () => {
      const n = 8;
      const a0 = tf.randomNormal([n, n], 0, 1, 'float32', 7);
      const a = tf.add(a0, tf.transpose(a0));
      const w = tf.variable(tf.randomNormal([n, 1], 0, 1, 'float32', 8));
      const v = tf.randomNormal([n, 1], 0, 1, 'float32', 9);
      const r = gradAndHvp(
        () => tf.mul(0.5, tf.sum(tf.mul(w, tf.matMul(a, w)))) as tf.Scalar,
        [w],
        [v],
      );
      const av = tf.matMul(a, v);
      assert.ok(maxAbsDiff(r.hvp[0]!, av) <= 1e-5 * maxAbs(av), 'H v = A v');
      assert.ok(maxAbsDiff(r.grads[0]!, tf.matMul(a, w)) <= 1e-5 * maxAbs(av) * 4, 'g = A w');
      tf.dispose([a0, a, w, v, av, r.loss, ...r.grads, ...r.hvp]);
    });

    it('assembles 2 A^T A / n for least squares, column by column', () => {
      const n = 20;
      const d = 6;
      const A = tf.randomNormal([n, d], 0, 1, 'float32', 1);
      const b = tf.randomNormal([n, 1], 0, 1, 'float32', 2);
      const w = tf.variable(tf.randomNormal([d, 1], 0, 1, 'float32', 3));
      const loss = () => tf.div(tf.sum(tf.square(tf.sub(tf.matMul(A, w), b))), n) as tf.Scalar;
      const basis = Array.from({ length: d }, (_, j) => [
        tf.oneHot([j], d).reshape([d, 1]).toFloat(),
      ]);
      const r = gradAndHvpMany(loss, [w], basis);
      const H = tf.concat(
        r.hvps.map((h) => h[0]!),
        1,
      );
      const exact = tf.div(tf.mul(2, tf.matMul(A, A, true, false)), n);
      assert.ok(maxAbsDiff(H, exact) <= 1e-5 * maxAbs(exact), `max diff ${maxAbsDiff(H, exact)}`);
      tf.dispose([A, b, w, H, exact, r.loss, ...r.grads, ...r.hvps.flat(), ...basis.flat()]);
    });

    it('gets x exp(x) right (the tape-order bug gives 3.2974 instead of 4.1218)', () => {
      const x = tf.variable(tf.scalar(0.5));
      const r = gradAndHvp(() => tf.mul(x, tf.exp(x)) as tf.Scalar, [x], [tf.scalar(1)]);
      assert.ok(Math.abs(r.hvp[0]!.dataSync()[0]! - 2.5 * Math.exp(0.5)) < 1e-5);
      tf.dispose([x, r.loss, ...r.grads, ...r.hvp]);
    });

    it('leaks no tensors over 100 calls', () => {
      const w = tf.variable(tf.randomNormal([5, 4], 0, 1, 'float32', 1));
      const x = tf.randomNormal([3, 5], 0, 1, 'float32', 2);
      const v = tf.randomNormal([5, 4], 0, 1, 'float32', 3);
      const lossFn = () => tf.sum(tf.tanh(tf.matMul(x, w))) as tf.Scalar;
      const run = () => {
        const r = gradAndHvp(lossFn, [w], [v]);
        tf.dispose([r.loss, ...r.grads, ...r.hvp]);
      };
      run();
      const before = tf.memory().numTensors;
      for (let i = 0; i < 100; i++) run();
      assert.equal(tf.memory().numTensors, before);
      tf.dispose([w, x, v]);
    });

    it('gives zero products and gradients for a variable the loss ignores', () => {
      const used = tf.variable(tf.tensor1d([1, 2]));
      const unused = tf.variable(tf.tensor1d([3, 4, 5]));
      const r = gradAndHvp(
        () => tf.sum(tf.square(used)) as tf.Scalar,
        [used, unused],
        [tf.ones([2]), tf.ones([3])],
      );
      assert.deepEqual(Array.from(r.hvp[1]!.dataSync()), [0, 0, 0]);
      assert.deepEqual(Array.from(r.grads[1]!.dataSync()), [0, 0, 0]);
      assert.deepEqual(Array.from(r.hvp[0]!.dataSync()), [2, 2]);
      tf.dispose([used, unused, r.loss, ...r.grads, ...r.hvp]);
    });

    it('rejects bad input with errors that name the problem', () => {
      const w = tf.variable(tf.ones([3]));
      const before = tf.memory().numTensors;
      assert.throws(
        () => gradAndHvp(() => tf.square(w) as unknown as tf.Scalar, [w], [tf.ones([3])]),
        {
          name: 'HvpInputError',
          message: /must be a scalar.*\[3\]/,
        },
      );
      const wrong = tf.ones([4]);
      assert.throws(
        () => gradAndHvp(() => tf.sum(w) as tf.Scalar, [w], [wrong]),
        /shape \[4\].*shape \[3\]/,
      );
      assert.throws(() => gradAndHvp(() => tf.sum(w) as tf.Scalar, [w], []), /Expected 1 vector/);
      assert.throws(
        () => gradAndHvp(() => tf.div(tf.sum(w), 0) as tf.Scalar, [w], [tf.ones([3])]),
        (e: Error) => e instanceof HvpInputError && /Infinity/.test(e.message),
      );
      assert.throws(
        () => gradAndHvp(() => tf.log(tf.neg(tf.sum(w))) as tf.Scalar, [w], [tf.ones([3])]),
        /NaN/,
      );
      wrong.dispose();
      // Failed calls leave nothing behind but the vectors we made inline above.
      assert.ok(tf.memory().numTensors - before <= 5);
      w.dispose();
    });
  });
}
