/**
 * MaxPoolGrad as one pass over the pooling windows: each window's dy goes to the first
 * strict maximum of x in it (cpu's rule; a window of only -Infinity/NaN gets none).
 * wasm's stock kernel (4.22) starts its running maximum at 0, so a window whose values are
 * all negative sends its gradient to the window's first element instead of its maximum;
 * cpu's reads element by element through TensorBuffer.get and is ~10x slower than this.
 */
import * as tf from '@tensorflow/tfjs';
import { asBackend, readValues, writeTensor } from './backend-access.js';
import { assertShape } from './conv2d-backprop-filter.js';

type Shape4D = [number, number, number, number];

export function makeMaxPoolGrad(): tf.KernelFunc {
  return ({ inputs, backend: anyBackend, attrs = {} }) => {
    const backend = asBackend(anyBackend);
    const dy = inputs['dy']!;
    const x = inputs['input']!;
    if (x.shape.length !== 4) {
      throw new Error(
        `MaxPoolGrad: expected a rank-4 NHWC input, got shape [${x.shape.join(',')}].`,
      );
    }
    const info = tf.backend_util.computePool2DInfo(
      x.shape as Shape4D,
      attrs['filterSize'] as number | [number, number],
      attrs['strides'] as number | [number, number],
      1,
      attrs['pad'] as Parameters<typeof tf.backend_util.computePool2DInfo>[4],
      attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
    );
    assertShape('MaxPoolGrad', 'dy', dy.shape, info.outShape);
    const xv = readValues(backend, x) as Float32Array;
    const dyv = readValues(backend, dy) as Float32Array;
    const { batchSize, inHeight, inWidth, inChannels: channels, outHeight, outWidth } = info;
    const { filterHeight, filterWidth, strideHeight, strideWidth } = info;
    const top = info.padInfo.top;
    const left = info.padInfo.left;
    // Float32 accumulation: an element receives one term per window that picks it (few).
    const dx = new Float32Array(xv.length);
    for (let n = 0; n < batchSize; n++) {
      for (let oh = 0; oh < outHeight; oh++) {
        const ihMin = Math.max(0, oh * strideHeight - top);
        const ihMax = Math.min(inHeight, oh * strideHeight - top + filterHeight);
        for (let ow = 0; ow < outWidth; ow++) {
          const iwMin = Math.max(0, ow * strideWidth - left);
          const iwMax = Math.min(inWidth, ow * strideWidth - left + filterWidth);
          const dyBase = ((n * outHeight + oh) * outWidth + ow) * channels;
          for (let c = 0; c < channels; c++) {
            // Row-major scan of the window, as cpu's kernel does, so ties go to the same element.
            let best = Number.NEGATIVE_INFINITY;
            let bestAt = -1;
            for (let ih = ihMin; ih < ihMax; ih++) {
              let at = ((n * inHeight + ih) * inWidth + iwMin) * channels + c;
              for (let iw = iwMin; iw < iwMax; iw++, at += channels) {
                const v = xv[at]!;
                if (v > best) {
                  best = v;
                  bestAt = at;
                }
              }
            }
            if (bestAt >= 0) dx[bestAt]! += dyv[dyBase + c]!;
          }
        }
      }
    }
    return writeTensor(backend, x.shape, 'float32', dx);
  };
}
