/**
 * ResNet-20's batch norm (batchNormTraining) and shortcut with the native kernels on, at sizes
 * the native kernels take (8192+ elements): gradients and Hessian-vector products equal stock
 * TF.js's (tf.moments + tf.batchNorm, its own kernels) to float32 rounding.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { gradAndHvp, ZeroPadShortcut } from '../../src/index.js';
import { batchNormTraining } from '../../src/autodiff/gradients/batch-norm.js';
import {
  disableNativeKernels,
  enableNativeKernels,
  nativeKernelStatus,
} from '../../src/native/index.js';
import { onnxRuntimeUnavailableReason } from '../../src/native/onnx-runtime.js';
import { maxAbs, maxAbsDiff, onBackend } from '../helpers.js';

const unavailable = onnxRuntimeUnavailableReason();

function relDiff(a: tf.Tensor, b: tf.Tensor): number {
  return maxAbsDiff(a, b) / Math.max(maxAbs(b), 1e-30);
}

describe('batchNormTraining with native kernels (cpu)', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));
  after(() => disableNativeKernels());

  it("gives stock TF.js's gradients and H v through a conv, batch norm and the shortcut", () => {
    const input = tf.randomNormal([8, 16, 16, 4], 0.5, 1, 'float32', 1) as tf.Tensor4D;
    const filter = tf.variable(tf.randomNormal([3, 3, 4, 8], 0, 0.3, 'float32', 2) as tf.Tensor4D);
    const gamma = tf.variable(tf.add(1, tf.randomNormal([8], 0, 0.3, 'float32', 3)) as tf.Tensor1D);
    const beta = tf.variable(tf.randomNormal([8], 0, 0.3, 'float32', 4) as tf.Tensor1D);
    const weights = tf.randomNormal([8, 8, 8, 16], 0, 1, 'float32', 5);
    const vars = [filter, gamma, beta];
    const vector = vars.map((v, i) => tf.randomNormal(v.shape, 0, 1, 'float32', 6 + i));
    const shortcut = new ZeroPadShortcut({ filters: 16, strides: 2 });
    const loss = (compact: boolean) => () =>
      tf.tidy(() => {
        const h = tf.conv2d(input, filter, 1, 'same');
        let normed: tf.Tensor;
        if (compact) normed = batchNormTraining(h, gamma, beta, 1e-3).normed;
        else {
          const { mean, variance } = tf.moments(h, [0, 1, 2]);
          normed = tf.batchNorm(h, mean, variance, beta, gamma, 1e-3);
        }
        const out = shortcut.apply(tf.relu(normed)) as tf.Tensor;
        return tf.sum(tf.mul(tf.sin(out), weights)) as tf.Scalar;
      });
    enableNativeKernels();
    const callsBefore = nativeKernelStatus().nativeCalls;
    const ours = gradAndHvp(loss(true), vars, vector);
    assert.ok(nativeKernelStatus().nativeCalls > callsBefore, 'the native kernels ran');
    disableNativeKernels();
    const theirs = gradAndHvp(loss(false), vars, vector);
    vars.forEach((_, i) => {
      const g = relDiff(ours.grads[i]!, theirs.grads[i]!);
      const h = relDiff(ours.hvp[i]!, theirs.hvp[i]!);
      assert.ok(g < 2e-5, `gradient of variable ${i}: ${g}`);
      assert.ok(h < 1e-4, `H v of variable ${i}: ${h}`);
    });
    tf.dispose([ours.loss, ...ours.grads, ...ours.hvp, theirs.loss, ...theirs.grads]);
    tf.dispose([...theirs.hvp, ...vars, ...vector, input, weights]);
  });
});
