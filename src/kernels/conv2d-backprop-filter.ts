/**
 * Conv2DBackpropFilter (the filter gradient of conv2d) as im2col + one matrix product:
 * dW[k, co] = sum_m P[k, m] dy[m, co], where P holds the input patch seen by each output
 * position m. P is built in JS directly in [K, M] layout because the wasm backend's
 * (XNNPACK) BatchMatMul is ~10x faster without transposeA. wasm has no kernel for this;
 * cpu's reads element by element through TensorBuffer.get and takes seconds per layer.
 */
import * as tf from '@tensorflow/tfjs';
import {
  asBackend,
  disposeInfo,
  readValues,
  runBackendKernel,
  viewAs,
  writeTensor,
} from './backend-access.js';
import { conv2DInfoFromAttrs, type Conv2DInfo } from './conv-geometry.js';

/** Largest patch matrix built at once (floats); bigger batches are processed in chunks. */
const MAX_PATCH_ELEMENTS = 1 << 23;

export function makeConv2DBackpropFilter(backendName: string): tf.KernelFunc {
  return ({ inputs, backend: anyBackend, attrs = {} }) => {
    const backend = asBackend(anyBackend);
    const x = inputs['x']!;
    const dy = inputs['dy']!;
    const filterShape = attrs['filterShape'] as number[];
    const info = conv2DInfoFromAttrs('Conv2DBackpropFilter', x.shape, filterShape, attrs, false);
    assertShape('Conv2DBackpropFilter', 'dy', dy.shape, info.outShape);
    const { batchSize, outHeight, outWidth, outChannels, filterHeight, filterWidth, inChannels } =
      info;
    const k = filterHeight * filterWidth * inChannels;
    const positionsPerImage = outHeight * outWidth;
    const imagesPerChunk = Math.max(1, Math.floor(MAX_PATCH_ELEMENTS / (k * positionsPerImage)));
    const xValues = readValues(backend, x) as Float32Array;

    if (imagesPerChunk >= batchSize) {
      const product = patchProduct(backend, backendName, xValues, info, 0, batchSize, dy, null);
      return viewAs(product, info.filterShape);
    }
    const dyValues = readValues(backend, dy) as Float32Array;
    const sum = new Float64Array(k * outChannels);
    for (let first = 0; first < batchSize; first += imagesPerChunk) {
      const count = Math.min(imagesPerChunk, batchSize - first);
      const product = patchProduct(backend, backendName, xValues, info, first, count, dy, dyValues);
      const values = readValues(backend, product);
      for (let i = 0; i < sum.length; i++) sum[i]! += values[i]!;
      disposeInfo(backend, product);
    }
    return writeTensor(backend, info.filterShape, 'float32', new Float32Array(sum));
  };
}

/** The product P[K, M] x dy[M, Cout] over images [first, first + count). */
function patchProduct(
  backend: tf.KernelBackend,
  backendName: string,
  xValues: Float32Array,
  info: Conv2DInfo,
  first: number,
  count: number,
  dy: tf.TensorInfo,
  dyValues: Float32Array | null,
): tf.TensorInfo {
  const m = count * info.outHeight * info.outWidth;
  const k = info.filterHeight * info.filterWidth * info.inChannels;
  const patches = writeTensor(
    backend,
    [1, k, m],
    'float32',
    patchesByRow(xValues, info, first, count),
  );
  const perImage = info.outHeight * info.outWidth * info.outChannels;
  const ownDy = dyValues != null;
  const dyChunk = ownDy
    ? writeTensor(
        backend,
        [1, m, info.outChannels],
        'float32',
        dyValues.subarray(first * perImage, (first + count) * perImage),
      )
    : viewAs(dy, [1, m, info.outChannels]);
  try {
    return runBackendKernel(
      'BatchMatMul',
      backendName,
      backend,
      { a: patches, b: dyChunk },
      { transposeA: false, transposeB: false },
    );
  } finally {
    disposeInfo(backend, patches);
    if (ownDy) disposeInfo(backend, dyChunk);
  }
}

/**
 * im2col in [K, M] layout: row k = (fh * FW + fw) * Cin + ci, column m = position of an
 * output pixel among images [first, first + count). Out-of-image taps stay zero.
 */
export function patchesByRow(
  x: Float32Array,
  info: Conv2DInfo,
  first: number,
  count: number,
): Float32Array {
  const { inHeight, inWidth, inChannels, outHeight, outWidth, filterHeight, filterWidth } = info;
  const { strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const m = count * outHeight * outWidth;
  const patches = new Float32Array(filterHeight * filterWidth * inChannels * m);
  for (let fh = 0; fh < filterHeight; fh++) {
    for (let fw = 0; fw < filterWidth; fw++) {
      const kBase = (fh * filterWidth + fw) * inChannels;
      const colOffset = fw * dilationWidth - left;
      const owMin = Math.max(0, Math.ceil(-colOffset / strideWidth));
      const owMax = Math.min(outWidth, Math.floor((inWidth - 1 - colOffset) / strideWidth) + 1);
      for (let n = 0; n < count; n++) {
        for (let oh = 0; oh < outHeight; oh++) {
          const ih = oh * strideHeight + fh * dilationHeight - top;
          if (ih < 0 || ih >= inHeight) continue;
          const rowBase = ((first + n) * inHeight + ih) * inWidth;
          const mBase = (n * outHeight + oh) * outWidth;
          for (let ci = 0; ci < inChannels; ci++) {
            const out = (kBase + ci) * m + mBase;
            for (let ow = owMin; ow < owMax; ow++) {
              patches[out + ow] = x[(rowBase + ow * strideWidth + colOffset) * inChannels + ci]!;
            }
          }
        }
      }
    }
  }
  return patches;
}

export function assertShape(
  kernelName: string,
  inputName: string,
  actual: number[],
  expected: number[],
): void {
  if (actual.length !== expected.length || actual.some((d, i) => d !== expected[i])) {
    throw new Error(
      `${kernelName}: ${inputName} has shape [${actual.join(',')}] but the convolution's attributes imply [${expected.join(',')}].`,
    );
  }
}
