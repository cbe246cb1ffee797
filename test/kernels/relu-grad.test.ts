import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { installSecondOrderSupport } from '../../src/autodiff/install.js';
import { RELU_GRAD } from '../../src/kernels/index.js';
import { onBackend, TEST_BACKENDS } from '../helpers.js';

installSecondOrderSupport();

const bits = (t: tf.Tensor) => Array.from(new Uint32Array(Float32Array.from(t.dataSync()).buffer));

test(
  'cpu: ReluGrad equals dy * step(x) bit for bit (NaN, infinities, signed zeros)',
  { skip: !TEST_BACKENDS.includes('cpu') },
  async () => {
    await onBackend('cpu');
    const special = [NaN, Infinity, -Infinity, 0, -0, 1e-40, -1e-40, 2, -3];
    const x = tf.tensor1d(special.flatMap((v) => special.map(() => v)));
    const dy = tf.tensor1d(special.flatMap(() => special));
    const ours = tf.engine().runKernel(RELU_GRAD, { dy, x }) as tf.Tensor;
    const stock = tf.mul(dy, tf.step(x));
    assert.deepEqual(bits(ours), bits(stock));
    tf.dispose([x, dy, ours, stock]);
  },
);

test(
  "cpu: relu's gradient runs ReluGrad, with the stock values; a second order goes through it",
  { skip: !TEST_BACKENDS.includes('cpu') },
  async () => {
    await onBackend('cpu');
    const x = tf.randomNormal([64, 33], 0, 1, 'float32', 3);
    const f = (v: tf.Tensor) => tf.sum(tf.mul(tf.relu(tf.mul(v, v)), tf.sin(v)));
    const before = tf.memory().numTensors;
    const kernels: string[] = [];
    const profile = await tf.profile(() => tf.grad(f)(x));
    for (const k of profile.kernels) kernels.push(k.name);
    tf.dispose(profile.result as tf.Tensor);
    assert.ok(kernels.includes(RELU_GRAD), `kernels: ${kernels.join(' ')}`);
    assert.ok(!kernels.includes('Step'));
    // The stock gradient, by hand: d/dv [relu(v^2) sin v] = step(v^2) 2v sin v + relu(v^2) cos v.
    const expected = tf.tidy(() =>
      tf.add(
        tf.mul(tf.step(tf.mul(x, x)), tf.mul(tf.mul(x, 2), tf.sin(x))),
        tf.mul(tf.relu(tf.mul(x, x)), tf.cos(x)),
      ),
    );
    const got = tf.grad(f)(x);
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(got, expected))).dataSync()[0]!);
    assert.ok(diff < 1e-5, `max diff ${diff}`);
    // Second order: d/dv of sum(grad) passes through ReluGrad's own gradient.
    const second = tf.grad((v: tf.Tensor) => tf.sum(tf.grad(f)(v)))(x);
    assert.equal(second.shape.join(), x.shape.join());
    assert.ok(second.dataSync().every(Number.isFinite));
    tf.dispose([expected, got, second]);
    assert.equal(tf.memory().numTensors, before);
    x.dispose();
  },
);
