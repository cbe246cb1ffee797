/**
 * MaxPoolGrad as one pass over the pooling windows: each window's dy goes to the first
 * strict maximum of x in it (cpu's rule; a window of only -Infinity/NaN gets none).
 * wasm's stock kernel (4.22) starts its running maximum at 0, so a window whose values are
 * all negative sends its gradient to the window's first element instead of its maximum.
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
    const dx = new Float64Array(xv.length);
    const best = new Float64Array(channels);
    const bestAt = new Int32Array(channels);
    for (let n = 0; n < batchSize; n++) {
      for (let oh = 0; oh < outHeight; oh++) {
        const ihMin = Math.max(0, oh * strideHeight - top);
        const ihMax = Math.min(inHeight, oh * strideHeight - top + filterHeight);
        for (let ow = 0; ow < outWidth; ow++) {
          const iwMin = Math.max(0, ow * strideWidth - left);
          const iwMax = Math.min(inWidth, ow * strideWidth - left + filterWidth);
          best.fill(Number.NEGATIVE_INFINITY);
          bestAt.fill(-1);
          // Row-major scan of the window, as cpu's kernel does, so ties go to the same element.
          for (let ih = ihMin; ih < ihMax; ih++) {
            for (let iw = iwMin; iw < iwMax; iw++) {
              const base = ((n * inHeight + ih) * inWidth + iw) * channels;
              for (let c = 0; c < channels; c++) {
                const v = xv[base + c]!;
                if (v > best[c]!) {
                  best[c] = v;
                  bestAt[c] = base + c;
                }
              }
            }
          }
          const dyBase = ((n * outHeight + oh) * outWidth + ow) * channels;
          for (let c = 0; c < channels; c++) {
            const at = bestAt[c]!;
            if (at >= 0) dx[at]! += dyv[dyBase + c]!;
          }
        }
      }
    }
    return writeTensor(backend, x.shape, 'float32', Float32Array.from(dx));
  };
}
