/**
 * Reuse of native output arrays: an array anything else has seen (dataSync, a view made by a
 * TF.js kernel such as Slice) is never handed out again, so values read from a tensor stay as
 * they were after the tensor is disposed; unseen arrays are reused; results do not change.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { onBackend } from '../helpers.js';
import {
  disableNativeKernels,
  enableNativeKernels,
  nativeKernelStatus,
} from '../../src/native/index.js';
import { onnxRuntimeUnavailableReason } from '../../src/native/onnx-runtime.js';
import { OutputBufferPool } from '../../src/native/buffer-pool.js';

const unavailable = onnxRuntimeUnavailableReason();
const SHAPE = [16, 12, 12, 8]; // above the element-wise threshold: Add/Mul run natively

/** Many same-sized native outputs, made and disposed: they would take any pooled array. */
function churn(seed: number): void {
  for (let i = 0; i < 6; i++) {
    tf.tidy(() => tf.mul(tf.add(tf.randomUniform(SHAPE, -1, 1, 'float32', seed + i), 1), 3));
  }
}

describe('native output reuse (cpu)', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));
  after(() => disableNativeKernels());

  it('values read with dataSync stay intact after the tensor is disposed', () => {
    enableNativeKernels({ threads: 1 });
    const a = tf.randomUniform(SHAPE, -1, 1, 'float32', 1);
    const sum = tf.add(a, a); // a native output
    const values = sum.dataSync();
    const copy = values.slice();
    sum.dispose();
    churn(10);
    assert.ok(nativeKernelStatus().reusedOutputs > 0, 'the churn itself reuses arrays');
    assert.deepEqual(values, copy);
    a.dispose();
    disableNativeKernels();
  });

  it('a view made by Slice outlives its source', () => {
    enableNativeKernels({ threads: 1 });
    const a = tf.randomUniform(SHAPE, -1, 1, 'float32', 2);
    const sum = tf.add(a, a);
    const rows = tf.slice(sum, [0], [4]); // the cpu backend's simple slice is a subarray view
    const expected = rows.dataSync().slice();
    sum.dispose();
    churn(20);
    assert.deepEqual(rows.dataSync(), expected);
    tf.dispose([a, rows]);
    disableNativeKernels();
  });

  it('a training loop gives the same result with and without reuse, and reuses', () => {
    const train = (outputPoolBytes: number) => {
      // Op by op (no step graphs): the kernels' outputs are what the pool reuses.
      enableNativeKernels({ threads: 1, outputPoolBytes, stepGraphs: false });
      const w = tf.tidy(() => tf.variable(tf.randomNormal([3, 3, 2, 8], 0, 0.3, 'float32', 3)));
      const x = tf.randomUniform([8, 12, 12, 2], 0, 1, 'float32', 4) as tf.Tensor4D;
      const optimizer = tf.train.adam(0.01);
      const step = () =>
        optimizer.minimize(() =>
          tf.mean(tf.square(tf.relu(tf.conv2d(x, w as unknown as tf.Tensor4D, 1, 'same')))),
        );
      step(); // creates Adam's state
      const tensors = tf.memory().numTensors;
      for (let i = 0; i < 7; i++) step();
      assert.equal(tf.memory().numTensors, tensors);
      const result = { values: w.dataSync().slice(), reused: nativeKernelStatus().reusedOutputs };
      optimizer.dispose();
      tf.dispose([w, x]);
      disableNativeKernels();
      return result;
    };
    const pooled = train(64 * 1024 * 1024);
    const fresh = train(0);
    assert.ok(pooled.reused > 0, 'arrays were reused');
    assert.equal(fresh.reused, 0);
    assert.deepEqual(pooled.values, fresh.values);
  });

  it('a bad pool size is named', () => {
    assert.throws(() => enableNativeKernels({ outputPoolBytes: -1 }), /'outputPoolBytes'/);
    const arena = 'no' as unknown as boolean;
    assert.throws(
      () => enableNativeKernels({ stepGraphMemoryArena: arena }),
      /'stepGraphMemoryArena' must be true or false, got "no"/,
    );
  });

  it('keeps no array while suspended (a step graph runs), and pools again after', () => {
    disableNativeKernels();
    const backend = tf.backend();
    const pool = new OutputBufferPool(2 ** 20);
    const uninstall = pool.install(backend);
    /** Disposes a tracked tensor of 100 floats; returns its array. */
    const disposeTracked = () => {
      const t = tf.zeros([100]);
      const record = (backend as unknown as { data: Map<object, { values: Float32Array }> }).data;
      const values = record.get(t.dataId)!.values;
      pool.track(backend, t.dataId, values);
      t.dispose();
      return values;
    };
    const resume = pool.suspend();
    const whileSuspended = disposeTracked();
    assert.notEqual(pool.take(100), whileSuspended, 'kept while suspended');
    resume();
    const after = disposeTracked();
    assert.equal(pool.take(100), after, 'pooled again after resume');
    // A pooled array is dropped by the next suspend.
    disposeTracked();
    pool.suspend()();
    assert.equal(pool.reused, 1);
    pool.take(100);
    assert.equal(pool.reused, 1, 'emptied by suspend');
    uninstall();
  });
});
