import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  installSecondOrderSupport,
  gradAndHvp,
  UnsupportedSecondOrderError,
} from '../../src/index.js';
import { assertVerifiedTfjsVersion } from '../../src/autodiff/install.js';
import { onBackend } from '../helpers.js';

describe('installing second-order support', () => {
  it('refuses an unverified TensorFlow.js version with a clear message', () => {
    assert.throws(
      () => assertVerifiedTfjsVersion('4.21.0'),
      /verified against .*4\.22\.0.*but 4\.21\.0 is loaded/,
    );
    assert.doesNotThrow(() => assertVerifiedTfjsVersion(tf.version_core));
  });

  it('is idempotent and leaves first-order gradients as they were', async () => {
    await onBackend('cpu');
    const x = tf.tensor1d([-1.5, -0.2, 0.3, 2]);
    const f = (t: tf.Tensor) => tf.sum(tf.mul(tf.tanh(t), tf.exp(t)));
    const once = tf.grad(f)(x);
    installSecondOrderSupport();
    installSecondOrderSupport();
    const twice = tf.grad(f)(x);
    // d/dx tanh(x) e^x = e^x (tanh x + 1 - tanh^2 x), computed in double precision.
    const exact = Array.from(x.dataSync()).map(
      (v) => Math.exp(v) * (Math.tanh(v) + 1 - Math.tanh(v) ** 2),
    );
    Array.from(once.dataSync()).forEach((g, i) => assert.ok(Math.abs(g - exact[i]!) < 1e-5));
    assert.deepEqual(Array.from(twice.dataSync()), Array.from(once.dataSync()));
    tf.dispose([x, once, twice]);
  });

  it('raises an error naming an unverified kernel instead of returning a number', async () => {
    await onBackend('cpu');
    const w = tf.variable(tf.tensor1d([0.3, 0.7]));
    // Atan2 is a real, differentiable kernel that nobody has verified for second order.
    const before = tf.memory().numTensors;
    assert.throws(
      () => gradAndHvp(() => tf.sum(tf.atan2(w, tf.scalar(2))) as tf.Scalar, [w], [tf.ones([2])]),
      (e: Error) => e instanceof UnsupportedSecondOrderError && /'Atan2'/.test(e.message),
    );
    assert.ok(tf.memory().numTensors - before <= 2); // the inline vector and scalar only
    w.dispose();
  });
});
