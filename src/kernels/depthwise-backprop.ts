/**
 * The two depthwise convolution gradients as direct loops over typed arrays. Their work is
 * that of the forward depthwise conv (no Cin x Cout product), so plain JS is fast enough;
 * wasm has neither kernel, and cpu's filter gradient reads element by element.
 * Filter layout [FH, FW, C, multiplier]; output channel c * multiplier + q.
 */
import * as tf from '@tensorflow/tfjs';
import { asBackend, readValues, writeTensor } from './backend-access.js';
import { conv2DInfoFromAttrs } from './conv-geometry.js';
import { assertShape } from './conv2d-backprop-filter.js';

export function makeDepthwiseBackpropFilter(): tf.KernelFunc {
  return ({ inputs, backend: anyBackend, attrs = {} }) => {
    const backend = asBackend(anyBackend);
    const x = inputs['x']!;
    const dy = inputs['dy']!;
    const filterShape = attrs['filterShape'] as number[];
    const name = 'DepthwiseConv2dNativeBackpropFilter';
    const info = conv2DInfoFromAttrs(name, x.shape, filterShape, attrs, true);
    assertShape(name, 'dy', dy.shape, info.outShape);
    const xv = readValues(backend, x) as Float32Array;
    const dyv = readValues(backend, dy) as Float32Array;
    const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
    const { filterHeight, filterWidth, strideHeight, strideWidth } = info;
    const { dilationHeight, dilationWidth } = info;
    const multiplier = outChannels / inChannels;
    const top = info.padInfo.top;
    const left = info.padInfo.left;
    // Float64 accumulation: each entry sums batch * outHeight * outWidth products.
    const dw = new Float64Array(filterHeight * filterWidth * outChannels);
    for (let n = 0; n < batchSize; n++) {
      for (let oh = 0; oh < outHeight; oh++) {
        for (let fh = 0; fh < filterHeight; fh++) {
          const ih = oh * strideHeight + fh * dilationHeight - top;
          if (ih < 0 || ih >= inHeight) continue;
          for (let ow = 0; ow < outWidth; ow++) {
            const dyOff = ((n * outHeight + oh) * outWidth + ow) * outChannels;
            for (let fw = 0; fw < filterWidth; fw++) {
              const iw = ow * strideWidth + fw * dilationWidth - left;
              if (iw < 0 || iw >= inWidth) continue;
              const xOff = ((n * inHeight + ih) * inWidth + iw) * inChannels;
              const wOff = (fh * filterWidth + fw) * outChannels;
              if (multiplier === 1) {
                for (let c = 0; c < inChannels; c++)
                  dw[wOff + c]! += xv[xOff + c]! * dyv[dyOff + c]!;
              } else {
                for (let c = 0; c < inChannels; c++) {
                  const xval = xv[xOff + c]!;
                  const o = c * multiplier;
                  for (let q = 0; q < multiplier; q++) {
                    dw[wOff + o + q]! += xval * dyv[dyOff + o + q]!;
                  }
                }
              }
            }
          }
        }
      }
    }
    return writeTensor(backend, info.filterShape, 'float32', new Float32Array(dw));
  };
}

export function makeDepthwiseBackpropInput(): tf.KernelFunc {
  return ({ inputs, backend: anyBackend, attrs = {} }) => {
    const backend = asBackend(anyBackend);
    const dy = inputs['dy']!;
    const filter = inputs['filter']!;
    const inputShape = attrs['inputShape'] as number[];
    const name = 'DepthwiseConv2dNativeBackpropInput';
    const info = conv2DInfoFromAttrs(name, inputShape, filter.shape, attrs, true);
    assertShape(name, 'dy', dy.shape, info.outShape);
    const dyv = readValues(backend, dy) as Float32Array;
    const fv = readValues(backend, filter) as Float32Array;
    const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
    const { filterHeight, filterWidth, strideHeight, strideWidth } = info;
    const { dilationHeight, dilationWidth } = info;
    const multiplier = outChannels / inChannels;
    const top = info.padInfo.top;
    const left = info.padInfo.left;
    // Float64 accumulation so results match a dot product rounded once, as cpu's kernel does.
    const dx = new Float64Array(batchSize * inHeight * inWidth * inChannels);
    for (let n = 0; n < batchSize; n++) {
      for (let oh = 0; oh < outHeight; oh++) {
        for (let fh = 0; fh < filterHeight; fh++) {
          const ih = oh * strideHeight + fh * dilationHeight - top;
          if (ih < 0 || ih >= inHeight) continue;
          for (let ow = 0; ow < outWidth; ow++) {
            const dyOff = ((n * outHeight + oh) * outWidth + ow) * outChannels;
            for (let fw = 0; fw < filterWidth; fw++) {
              const iw = ow * strideWidth + fw * dilationWidth - left;
              if (iw < 0 || iw >= inWidth) continue;
              const xOff = ((n * inHeight + ih) * inWidth + iw) * inChannels;
              const wOff = (fh * filterWidth + fw) * outChannels;
              if (multiplier === 1) {
                for (let c = 0; c < inChannels; c++)
                  dx[xOff + c]! += dyv[dyOff + c]! * fv[wOff + c]!;
              } else {
                for (let c = 0; c < inChannels; c++) {
                  const o = c * multiplier;
                  let s = 0;
                  for (let q = 0; q < multiplier; q++) s += dyv[dyOff + o + q]! * fv[wOff + o + q]!;
                  dx[xOff + c]! += s;
                }
              }
            }
          }
        }
      }
    }
    return writeTensor(backend, info.inShape, 'float32', new Float32Array(dx));
  };
}
