/**
 * Conv3DBackpropInputV2 and Conv3DBackpropFilterV2 (the input and filter gradients of
 * conv3d) as direct loops over typed arrays. Registered for wasm, whose stock kernels give
 * wrong results in TF.js 4.22 (its input gradient for every geometry; its filter gradient
 * with strides > 1); cpu's are right and stay. NDHWC, dilation 1 (all TF.js asks of them).
 * Float64 accumulation: each entry sums up to batch * outDepth * outHeight * outWidth terms.
 */
import * as tf from '@tensorflow/tfjs';
import { asBackend, readValues, writeTensor } from './backend-access.js';
import { UnsupportedKernelAttributeError } from './conv-geometry.js';
import { assertShape } from './conv2d-backprop-filter.js';

type Shape5D = [number, number, number, number, number];
type Conv3DInfo = ReturnType<typeof tf.backend_util.computeConv3DInfo>;

function conv3DInfo(
  kernelName: string,
  inShape: number[],
  filterShape: number[],
  attrs: tf.NamedAttrMap,
): Conv3DInfo {
  const dataFormat = (attrs['dataFormat'] as string | undefined) ?? 'NDHWC';
  if (dataFormat !== 'NDHWC') {
    throw new UnsupportedKernelAttributeError(
      `${kernelName}: dataFormat '${dataFormat}' is not supported by adahessian's kernel; only 'NDHWC'.`,
    );
  }
  if (inShape.length !== 5 || filterShape.length !== 5) {
    throw new Error(
      `${kernelName}: expected rank-5 input and filter shapes, got [${inShape.join(',')}] and [${filterShape.join(',')}].`,
    );
  }
  const strides = attrs['strides'] as number | [number, number, number];
  const pad = attrs['pad'] as 'valid' | 'same';
  return tf.backend_util.computeConv3DInfo(
    inShape as Shape5D,
    filterShape as Shape5D,
    strides,
    1,
    pad,
  );
}

/**
 * Calls visit(xOffset, dyOffset, wOffset) for every (input position, output position, tap)
 * that the convolution connects; offsets are of the first channel.
 */
function forEachTap(
  info: Conv3DInfo,
  visit: (xOff: number, dyOff: number, wOff: number) => void,
): void {
  const { batchSize, inDepth, inHeight, inWidth, inChannels, outChannels } = info;
  const { outDepth, outHeight, outWidth, filterDepth, filterHeight, filterWidth } = info;
  const { strideDepth, strideHeight, strideWidth } = info;
  const { front, top, left } = info.padInfo;
  for (let n = 0; n < batchSize; n++) {
    for (let od = 0; od < outDepth; od++) {
      for (let oh = 0; oh < outHeight; oh++) {
        for (let ow = 0; ow < outWidth; ow++) {
          const dyOff = (((n * outDepth + od) * outHeight + oh) * outWidth + ow) * outChannels;
          for (let fd = 0; fd < filterDepth; fd++) {
            const id = od * strideDepth + fd - front;
            if (id < 0 || id >= inDepth) continue;
            for (let fh = 0; fh < filterHeight; fh++) {
              const ih = oh * strideHeight + fh - top;
              if (ih < 0 || ih >= inHeight) continue;
              for (let fw = 0; fw < filterWidth; fw++) {
                const iw = ow * strideWidth + fw - left;
                if (iw < 0 || iw >= inWidth) continue;
                const xOff = (((n * inDepth + id) * inHeight + ih) * inWidth + iw) * inChannels;
                const wOff =
                  ((fd * filterHeight + fh) * filterWidth + fw) * inChannels * outChannels;
                visit(xOff, dyOff, wOff);
              }
            }
          }
        }
      }
    }
  }
}

export function makeConv3DBackpropInput(): tf.KernelFunc {
  return ({ inputs, backend: anyBackend, attrs = {} }) => {
    const backend = asBackend(anyBackend);
    const dy = inputs['dy']!;
    const filter = inputs['filter']!;
    const name = 'Conv3DBackpropInputV2';
    const info = conv3DInfo(name, attrs['inputShape'] as number[], filter.shape, attrs);
    assertShape(name, 'dy', dy.shape, info.outShape);
    const dyv = readValues(backend, dy) as Float32Array;
    const w = readValues(backend, filter) as Float32Array;
    const { inChannels: cin, outChannels: cout } = info;
    const dx = new Float64Array(tf.util.sizeFromShape(info.inShape));
    forEachTap(info, (xOff, dyOff, wOff) => {
      for (let ci = 0; ci < cin; ci++) {
        let s = 0;
        const row = wOff + ci * cout;
        for (let co = 0; co < cout; co++) s += dyv[dyOff + co]! * w[row + co]!;
        dx[xOff + ci]! += s;
      }
    });
    return writeTensor(backend, info.inShape, 'float32', new Float32Array(dx));
  };
}

export function makeConv3DBackpropFilter(): tf.KernelFunc {
  return ({ inputs, backend: anyBackend, attrs = {} }) => {
    const backend = asBackend(anyBackend);
    const x = inputs['x']!;
    const dy = inputs['dy']!;
    const name = 'Conv3DBackpropFilterV2';
    const info = conv3DInfo(name, x.shape, attrs['filterShape'] as number[], attrs);
    assertShape(name, 'dy', dy.shape, info.outShape);
    const xv = readValues(backend, x) as Float32Array;
    const dyv = readValues(backend, dy) as Float32Array;
    const { inChannels: cin, outChannels: cout } = info;
    const dw = new Float64Array(tf.util.sizeFromShape(info.filterShape));
    forEachTap(info, (xOff, dyOff, wOff) => {
      for (let ci = 0; ci < cin; ci++) {
        const xval = xv[xOff + ci]!;
        const row = wOff + ci * cout;
        for (let co = 0; co < cout; co++) dw[row + co]! += xval * dyv[dyOff + co]!;
      }
    });
    return writeTensor(backend, info.filterShape, 'float32', new Float32Array(dw));
  };
}
