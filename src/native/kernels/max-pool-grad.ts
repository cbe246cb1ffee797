/**
 * MaxPoolGrad for NHWC float32 in plain typed-array loops. TF.js's cpu kernel visits every
 * input element through TensorBuffer.get (several hundred ms per call at batch 128); this
 * one scans each window once. The result is the same: the first strict maximum of each
 * window (padding excluded, -Infinity/NaN never selected) receives that output's gradient.
 * ONNX has no MaxPoolGrad, so this kernel runs in JS.
 *
 * The scan (which input element wins each window) is the expensive part, and a training step
 * with second-order terms asks for it several times on the same input: the first-order
 * gradient, the pooling second-order pass (MaxPoolGrad on ones) and the second-order sweep
 * back through MaxPool all select from the same activations. So the winning positions are
 * kept per input (by its data id, which TF.js never rewrites: tensors are immutable) and
 * later calls only scatter dy.
 */
import * as tf from '@tensorflow/tfjs';
import type { DirectKernel } from './types.js';

type Shape4D = [number, number, number, number];
type PoolInfo = ReturnType<typeof tf.backend_util.computePool2DInfo>;

interface Positions {
  /** The pooling geometry the positions are for. */
  key: string;
  /** Per output element, the flat index of its window's winner in the input, or -1. */
  winners: Int32Array;
}

/** Weak: an entry goes when the input's data id does; a step's inputs come and go. */
const winnersByInput = new WeakMap<object, Positions>();

export const maxPoolGradKernel: DirectKernel = {
  kernelName: 'MaxPoolGrad',
  run(inputs, attrs, backend, buffers) {
    const { dy, input } = inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
    if (dy.dtype !== 'float32' || input.dtype !== 'float32' || input.shape.length !== 4) {
      return null;
    }
    const info = tf.backend_util.computePool2DInfo(
      input.shape as Shape4D,
      attrs['filterSize'] as [number, number] | number,
      attrs['strides'] as [number, number] | number,
      1,
      attrs['pad'] as Parameters<typeof tf.backend_util.computePool2DInfo>[4],
      attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
    );
    if (!tf.util.arraysEqual(dy.shape, info.outShape)) return null;
    // A reshape shares its data id: the input's shape is part of the geometry.
    const key = [
      ...input.shape,
      info.filterHeight,
      info.filterWidth,
      info.strideHeight,
      info.strideWidth,
      info.padInfo.top,
      info.padInfo.left,
      info.outHeight,
      info.outWidth,
    ].join(',');
    let found = winnersByInput.get(input.dataId);
    if (found?.key !== key) {
      found = { key, winners: windowWinners(buffers.read(backend, input.dataId), info) };
      winnersByInput.set(input.dataId, found);
    }
    const { winners } = found;
    const g = buffers.read(backend, dy.dataId);
    const dx = buffers.zeros(tf.util.sizeFromShape(input.shape));
    for (let k = 0; k < winners.length; k++) {
      const at = winners[k]!;
      if (at >= 0) dx[at] += g[k]!;
    }
    return buffers.output(backend, input.shape, dx);
  },
};

/** For each output element (NHWC order), the flat input index of its window's first strict max. */
function windowWinners(x: Float32Array, info: PoolInfo): Int32Array {
  const { batchSize, inHeight, inWidth, inChannels: c, outHeight, outWidth } = info;
  const { strideHeight, strideWidth, filterHeight, filterWidth } = info;
  const { top, left } = info.padInfo;
  const winners = new Int32Array(batchSize * outHeight * outWidth * c);
  const rowStride = inWidth * c;
  let k = 0;
  for (let b = 0; b < batchSize; b++) {
    const xBatch = b * inHeight * rowStride;
    for (let oh = 0; oh < outHeight; oh++) {
      const h0 = oh * strideHeight - top;
      const hStart = Math.max(0, h0);
      const hEnd = Math.min(inHeight, h0 + filterHeight);
      for (let ow = 0; ow < outWidth; ow++) {
        const w0 = ow * strideWidth - left;
        const wStart = Math.max(0, w0);
        const wEnd = Math.min(inWidth, w0 + filterWidth);
        const corner = xBatch + hStart * rowStride + wStart * c;
        if (hEnd - hStart === 2 && wEnd - wStart === 2 && filterHeight === 2 && filterWidth === 2) {
          // The common 2x2 window, whole: the same scan unrolled (about a third faster).
          for (let d = 0; d < c; d++, k++) {
            const i0 = corner + d;
            let best = -Infinity;
            let at = -1;
            let v = x[i0]!;
            if (v > best) {
              best = v;
              at = i0;
            }
            v = x[i0 + c]!;
            if (v > best) {
              best = v;
              at = i0 + c;
            }
            v = x[i0 + rowStride]!;
            if (v > best) {
              best = v;
              at = i0 + rowStride;
            }
            if (x[i0 + rowStride + c]! > best) at = i0 + rowStride + c;
            winners[k] = at;
          }
          continue;
        }
        // One channel at a time: a scalar running maximum, scanning the window row by row.
        for (let d = 0; d < c; d++, k++) {
          let best = -Infinity;
          let at = -1;
          for (let h = hStart, row = corner + d; h < hEnd; h++, row += rowStride) {
            for (let w = wStart, i = row; w < wEnd; w++, i += c) {
              const v = x[i]!;
              if (v > best) {
                best = v;
                at = i;
              }
            }
          }
          winners[k] = at;
        }
      }
    }
  }
  return winners;
}
