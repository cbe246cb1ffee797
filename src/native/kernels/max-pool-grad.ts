/**
 * MaxPoolGrad for NHWC float32 in plain typed-array loops. TF.js's cpu kernel visits every
 * input element through TensorBuffer.get (several hundred ms per call at batch 128); this
 * one scans each window once with the channel loop innermost. The result is the same: the
 * first strict maximum of each window (padding excluded, -Infinity/NaN never selected)
 * receives that output's gradient. ONNX has no MaxPoolGrad, so this kernel runs in JS.
 */
import * as tf from '@tensorflow/tfjs';
import type { DirectKernel } from './types.js';

type Shape4D = [number, number, number, number];

export const maxPoolGradKernel: DirectKernel = {
  kernelName: 'MaxPoolGrad',
  run(inputs, attrs, backend) {
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
    const x = backend.readSync(input.dataId) as Float32Array;
    const g = backend.readSync(dy.dataId) as Float32Array;
    const { batchSize, inHeight, inWidth, inChannels: c, outHeight, outWidth } = info;
    const { strideHeight, strideWidth, filterHeight, filterWidth } = info;
    const { top, left } = info.padInfo;
    const dx = new Float32Array(batchSize * inHeight * inWidth * c);
    const best = new Float32Array(c);
    const where = new Int32Array(c);
    for (let b = 0; b < batchSize; b++) {
      for (let oh = 0; oh < outHeight; oh++) {
        const h0 = oh * strideHeight - top;
        const hStart = Math.max(0, h0);
        const hEnd = Math.min(inHeight, h0 + filterHeight);
        for (let ow = 0; ow < outWidth; ow++) {
          const w0 = ow * strideWidth - left;
          const wStart = Math.max(0, w0);
          const wEnd = Math.min(inWidth, w0 + filterWidth);
          best.fill(-Infinity);
          where.fill(-1);
          for (let h = hStart; h < hEnd; h++) {
            for (let w = wStart; w < wEnd; w++) {
              const base = ((b * inHeight + h) * inWidth + w) * c;
              for (let d = 0; d < c; d++) {
                const v = x[base + d]!;
                if (v > best[d]!) {
                  best[d] = v;
                  where[d] = base + d;
                }
              }
            }
          }
          const dyBase = ((b * outHeight + oh) * outWidth + ow) * c;
          for (let d = 0; d < c; d++) {
            const at = where[d]!;
            if (at >= 0) dx[at] += g[dyBase + d]!;
          }
        }
      }
    }
    return (backend as unknown as TensorInfoMaker).makeTensorInfo(input.shape, 'float32', dx);
  },
};

interface TensorInfoMaker {
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}
