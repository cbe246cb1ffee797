/**
 * The native Sum over the rows of [R, N] on several ONNX Runtime threads (src/native/kernels/
 * reduce.ts rowBlockCount): in row blocks, as TF.js to float32 rounding, and bit for bit what a
 * step graph built for the same thread count gives (the step's check compares the two; on two
 * threads the step graph reduces in the same blocks: translate.ts). One thread: one reduction.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  disableNativeKernels,
  enableNativeKernels,
  nativeKernelStatus,
} from '../../src/native/index.js';
import { onnxRuntimeUnavailableReason } from '../../src/native/onnx-runtime.js';
import { sumKernel } from '../../src/native/kernels/reduce.js';
import { record } from '../../src/native/step-graph/capture.js';
import { buildStepGraph } from '../../src/native/step-graph/build.js';
import { onBackend } from '../helpers.js';
import { runBuiltGraph } from './step-graph/helpers.js';

const unavailable = onnxRuntimeUnavailableReason();
/** A conv's bias gradient: NHWC [8, 28, 28, 16] over its first three axes (6,272 rows). */
const sumRows = (x: tf.Tensor) => tf.sum(x, [0, 1, 2]);
/** A tensor's values, the tensor disposed. */
function read(t: tf.Tensor): Float32Array {
  const values = t.dataSync() as Float32Array;
  t.dispose();
  return values;
}

describe('native Sum over rows on several threads (cpu)', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));
  after(() => disableNativeKernels());

  it('plans row blocks on two threads, one reduction on one', () => {
    const x = { dataId: {}, shape: [8, 28, 28, 16], dtype: 'float32' } as tf.TensorInfo;
    const attrs = { axis: [0, 1, 2], keepDims: false };
    const two = sumKernel.plan({ x }, attrs, { threads: 2 })!;
    assert.deepEqual(two.inputShapes, [[16, 392, 16]]);
    assert.equal(two.build().nodes.length, 2);
    const one = sumKernel.plan({ x }, attrs, { threads: 1 })!;
    assert.deepEqual(one.inputShapes, [[6272, 16]]);
    assert.equal(one.build().nodes.length, 1);
  });

  for (const threads of [1, 2]) {
    it(`on ${threads} thread(s): as TF.js, and bit for bit as a step graph built for ${threads}`, () => {
      disableNativeKernels();
      const start = tf.memory().numTensors;
      const x = tf.randomNormal([8, 28, 28, 16], 0.3, 1, 'float32', 11);
      const want = read(sumRows(x));
      const { result, recording, refOf } = record(() => sumRows(x));
      const built = buildStepGraph(recording, [{ ref: refOf(result)!, shape: [...result.shape] }], {
        threads,
      });
      const [[graph]] = runBuiltGraph(built, recording, { threads });
      result.dispose();
      const status = enableNativeKernels({ threads });
      assert.equal(status.enabled, true, status.reason);
      const native = read(sumRows(x));
      assert.equal(nativeKernelStatus().nativeCalls, 1, 'the sum ran natively');
      let scale = 0;
      let err = 0;
      for (let i = 0; i < want.length; i++) {
        scale = Math.max(scale, Math.abs(want[i]!));
        err = Math.max(err, Math.abs(native[i]! - want[i]!));
      }
      assert.ok(err <= 1e-5 * scale, `native differs from TF.js by ${err} against ${scale}`);
      assert.deepEqual(Array.from(native), Array.from(graph!), 'native Sum and the step graph');
      x.dispose();
      disableNativeKernels();
      assert.equal(tf.memory().numTensors, start, 'no tensors leaked');
    });
  }
});
