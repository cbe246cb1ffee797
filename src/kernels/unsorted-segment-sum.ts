/**
 * UnsortedSegmentSum (the gradient of gather / embeddings) as one pass over the rows of x:
 * out[ids[i], ...] += x[i, ...]. wasm has no kernel for it; cpu's builds a mask per segment
 * and so costs numSegments full passes over x (minutes for a large vocabulary).
 * segmentIds may have any rank r whose shape is a prefix of x's; ids outside
 * [0, numSegments) are dropped, as in TensorFlow.
 */
import * as tf from '@tensorflow/tfjs';
import { asBackend, readValues, writeTensor } from './backend-access.js';

export function makeUnsortedSegmentSum(): tf.KernelFunc {
  return ({ inputs, backend: anyBackend, attrs = {} }) => {
    const backend = asBackend(anyBackend);
    const x = inputs['x']!;
    const segmentIds = inputs['segmentIds']!;
    const numSegments = attrs['numSegments'] as number;
    const idsShape = segmentIds.shape;
    if (!Number.isInteger(numSegments) || numSegments < 0) {
      throw new Error(
        `UnsortedSegmentSum: numSegments must be a non-negative integer, got ${numSegments}.`,
      );
    }
    if (idsShape.length > x.shape.length || idsShape.some((d, i) => d !== x.shape[i])) {
      throw new Error(
        `UnsortedSegmentSum: segmentIds shape [${idsShape.join(',')}] must be a prefix of x shape [${x.shape.join(',')}].`,
      );
    }
    if (x.dtype !== 'float32' && x.dtype !== 'int32') {
      throw new Error(
        `UnsortedSegmentSum: x dtype '${x.dtype}' is not supported; use float32 or int32.`,
      );
    }
    const innerShape = x.shape.slice(idsShape.length);
    const inner = innerShape.reduce((a, b) => a * b, 1);
    const ids = readValues(backend, segmentIds);
    const xv = readValues(backend, x);
    // Float64 accumulation for float32 so long segments round once, like a reduction.
    const sums =
      x.dtype === 'float32'
        ? new Float64Array(numSegments * inner)
        : new Int32Array(numSegments * inner);
    for (let row = 0; row < ids.length; row++) {
      const id = ids[row]!;
      if (id < 0 || id >= numSegments) continue;
      const src = row * inner;
      const dst = id * inner;
      for (let j = 0; j < inner; j++) sums[dst + j]! += xv[src + j]!;
    }
    const values = x.dtype === 'float32' ? new Float32Array(sums) : (sums as Int32Array);
    return writeTensor(backend, [numSegments, ...innerShape], x.dtype, values);
  };
}
