import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, onBackend } from '../helpers.js';
import { registerFastKernels, stockKernel } from '../../src/kernels/index.js';
import {
  randomInt,
  randomValues,
  referenceSegmentSum,
  relativeMaxError,
  seededRandom,
} from './reference-loops.js';

registerFastKernels();

function runSegmentSum(
  x: Float32Array | Int32Array,
  xShape: number[],
  ids: Int32Array,
  idsShape: number[],
  numSegments: number,
): { values: Float32Array | Int32Array; shape: number[]; dtype: string } {
  return tf.tidy(() => {
    const out = tf
      .engine()
      .runKernel(
        'UnsortedSegmentSum',
        { x: tf.tensor(x, xShape), segmentIds: tf.tensor(ids, idsShape, 'int32') },
        { numSegments },
      ) as tf.Tensor;
    return {
      values: out.dataSync() as Float32Array | Int32Array,
      shape: out.shape,
      dtype: out.dtype,
    };
  });
}

for (const backend of TEST_BACKENDS) {
  test(`${backend}: UnsortedSegmentSum matches a reference loop (ids of rank 1 and 2, out-of-range ids dropped)`, async () => {
    await onBackend(backend);
    const rand = seededRandom(77);
    for (let i = 0; i < 30; i++) {
      const idsShape =
        rand() < 0.5 ? [randomInt(rand, 1, 20)] : [randomInt(rand, 1, 5), randomInt(rand, 1, 5)];
      const innerShape = Array.from({ length: randomInt(rand, 0, 2) }, () => randomInt(rand, 1, 4));
      const numSegments = randomInt(rand, 1, 12);
      const rows = tf.util.sizeFromShape(idsShape);
      const inner = tf.util.sizeFromShape(innerShape);
      // Mostly valid ids, some negative or >= numSegments, which TensorFlow drops.
      const ids = Int32Array.from({ length: rows }, () => randomInt(rand, -1, numSegments));
      const x = randomValues(rand, rows * inner);
      const got = runSegmentSum(x, [...idsShape, ...innerShape], ids, idsShape, numSegments);
      assert.deepEqual(got.shape, [numSegments, ...innerShape]);
      const err = relativeMaxError(got.values, referenceSegmentSum(x, ids, inner, numSegments));
      assert.ok(err < 1e-6, `case ${i}: relative error ${err}`);
    }
  });

  test(`${backend}: UnsortedSegmentSum keeps int32 and rejects ids that are not a prefix of x`, async () => {
    await onBackend(backend);
    const got = runSegmentSum(
      Int32Array.from([1, 2, 3, 4, 5, 6]),
      [3, 2],
      Int32Array.from([1, 1, 0]),
      [3],
      2,
    );
    assert.equal(got.dtype, 'int32');
    assert.deepEqual(Array.from(got.values), [5, 6, 4, 6]);
    assert.throws(
      () => runSegmentSum(new Float32Array(6), [3, 2], Int32Array.from([0, 1]), [2], 2),
      /segmentIds shape \[2\] must be a prefix of x shape \[3,2\]/,
    );
  });
}

test("cpu: UnsortedSegmentSum equals cpu's stock kernel for 1-D ids", async () => {
  await onBackend('cpu');
  const stock = stockKernel('UnsortedSegmentSum', 'cpu')!;
  assert.ok(stock);
  const rand = seededRandom(8);
  for (let i = 0; i < 10; i++) {
    const rows = randomInt(rand, 1, 30);
    const inner = randomInt(rand, 1, 6);
    const numSegments = randomInt(rand, 1, 10);
    const ids = Int32Array.from({ length: rows }, () => randomInt(rand, 0, numSegments - 1));
    const x = randomValues(rand, rows * inner);
    const expected = tf.tidy(() => {
      const out = stock.kernelFunc({
        inputs: { x: tf.tensor(x, [rows, inner]), segmentIds: tf.tensor(ids, [rows], 'int32') },
        backend: tf.backend(),
        attrs: { numSegments },
      }) as tf.TensorInfo;
      return tf.engine().makeTensorFromTensorInfo(out).dataSync() as Float32Array;
    });
    const got = runSegmentSum(x, [rows, inner], ids, [rows], numSegments);
    assert.ok(relativeMaxError(got.values, expected) < 1e-6, `case ${i}`);
  }
});
