/**
 * The verified-backend rule: a product on a backend whose coverage suite has not passed here is
 * refused with an error naming it (never a number), unless the caller opts in; refusing leaves
 * weights and optimizer state untouched and leaks nothing.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  AdaHessian,
  SECOND_ORDER_VERIFIED_BACKENDS,
  UnverifiedBackendError,
  allowUnverifiedBackend,
  checkSecondOrder,
  gradAndHvp,
} from '../../src/index.js';
import { useBackend } from '../../src/backends.js';
import { registerCpuCopy } from '../cpu-copy-backend.js';

const UNVERIFIED = 'cpu-unverified';
const xExpX = (x: tf.Variable) => () => tf.mul(x, tf.exp(x)) as tf.Scalar;

describe('products on a backend that is not verified', () => {
  before(async () => {
    registerCpuCopy(UNVERIFIED);
    await useBackend(UNVERIFIED);
  });
  after(() => useBackend('cpu'));

  it('lists cpu, wasm, webgl and webgpu as verified, and not tfjs-node', () => {
    for (const b of ['cpu', 'wasm', 'webgl', 'webgpu']) {
      assert.ok(SECOND_ORDER_VERIFIED_BACKENDS.includes(b));
    }
    assert.ok(!SECOND_ORDER_VERIFIED_BACKENDS.includes('tensorflow'));
    assert.ok(!SECOND_ORDER_VERIFIED_BACKENDS.includes(UNVERIFIED));
  });

  it('refuses with an error naming the backend, leaking nothing', () => {
    const x = tf.variable(tf.scalar(0.5));
    const v = tf.scalar(1);
    const before = tf.memory().numTensors;
    assert.throws(
      () => gradAndHvp(xExpX(x), [x], [v]),
      (e: Error) =>
        e instanceof UnverifiedBackendError &&
        e.backendName === UNVERIFIED &&
        e.message.includes(`'${UNVERIFIED}'`) &&
        e.message.includes('allowUnverifiedBackend'),
    );
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([x, v]);
  });

  it('computes when the call opts in, or after allowUnverifiedBackend until withdrawn', () => {
    const x = tf.variable(tf.scalar(0.5));
    const v = tf.scalar(1);
    const hvpOf = (options = {}) => {
      const r = gradAndHvp(xExpX(x), [x], [v], options);
      const value = r.hvp[0]!.dataSync()[0]!;
      tf.dispose([r.loss, ...r.grads, ...r.hvp]);
      return value;
    };
    // d²/dx² x·eˣ = (x + 2)·eˣ = 4.1218 at 0.5
    assert.ok(Math.abs(hvpOf({ allowUnverifiedBackend: true }) - 2.5 * Math.exp(0.5)) < 1e-5);
    const withdraw = allowUnverifiedBackend(UNVERIFIED);
    assert.ok(Math.abs(hvpOf() - 2.5 * Math.exp(0.5)) < 1e-5);
    withdraw();
    assert.throws(() => hvpOf(), UnverifiedBackendError);
    tf.dispose([x, v]);
  });

  it('AdaHessian refuses too and leaves the weights and its step untouched', () => {
    const w = tf.variable(tf.tensor1d([1, -2, 3]));
    const before = Array.from(w.dataSync());
    const opt = new AdaHessian({ learningRate: 0.1, seed: 1 });
    assert.throws(
      () => opt.minimize(() => tf.sum(tf.square(w)) as tf.Scalar),
      UnverifiedBackendError,
    );
    assert.deepEqual(Array.from(w.dataSync()), before);
    assert.equal(opt.iterations, 0);
    opt.dispose();
    w.dispose();
  });

  it('checkSecondOrder still runs there: it is how a backend gets verified', async () => {
    const results = await checkSecondOrder({ filter: 'quadratic' });
    assert.ok(results.length > 0);
    for (const r of results) assert.ok(r.pass, `${r.name}: ${r.error ?? r.relError}`);
    assert.equal(results[0]!.backend, UNVERIFIED);
  });
});
