/**
 * Conv2DBackpropInput (the input gradient of conv2d) as one matrix product and a col2im
 * scatter: cols[m, k] = sum_co dy[m, co] W[k, co], then dx[pixel under tap k of m] += cols[m, k].
 * Registered for wasm only: its stock kernel is a plain C++ loop ~8x slower than the
 * XNNPACK forward conv; cpu's is a direct typed-array loop already as fast as this would be.
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
import { assertShape } from './conv2d-backprop-filter.js';

/** Largest column matrix built at once (floats); bigger batches are processed in chunks. */
const MAX_COLUMN_ELEMENTS = 1 << 23;

export function makeConv2DBackpropInput(backendName: string): tf.KernelFunc {
  return ({ inputs, backend: anyBackend, attrs = {} }) => {
    const backend = asBackend(anyBackend);
    const dy = inputs['dy']!;
    const filter = inputs['filter']!;
    const inputShape = attrs['inputShape'] as number[];
    const name = 'Conv2DBackpropInput';
    const info = conv2DInfoFromAttrs(name, inputShape, filter.shape, attrs, false);
    assertShape(name, 'dy', dy.shape, info.outShape);
    const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
    const k = info.filterHeight * info.filterWidth * inChannels;
    const positionsPerImage = outHeight * outWidth;
    const imagesPerChunk = Math.max(1, Math.floor(MAX_COLUMN_ELEMENTS / (k * positionsPerImage)));

    // W as [Cout, K], so the product needs no transpose (slow on wasm).
    const w = readValues(backend, filter) as Float32Array;
    const wT = new Float32Array(outChannels * k);
    for (let i = 0; i < k; i++) {
      for (let co = 0; co < outChannels; co++) wT[co * k + i] = w[i * outChannels + co]!;
    }
    const wTInfo = writeTensor(backend, [1, outChannels, k], 'float32', wT);
    const dx = new Float32Array(batchSize * inHeight * inWidth * inChannels);
    const dyValues = imagesPerChunk >= batchSize ? null : (readValues(backend, dy) as Float32Array);
    const perImage = positionsPerImage * outChannels;
    try {
      for (let first = 0; first < batchSize; first += imagesPerChunk) {
        const count = Math.min(imagesPerChunk, batchSize - first);
        const m = count * positionsPerImage;
        const dyChunk =
          dyValues == null
            ? viewAs(dy, [1, m, outChannels])
            : writeTensor(
                backend,
                [1, m, outChannels],
                'float32',
                dyValues.subarray(first * perImage, (first + count) * perImage),
              );
        let cols: tf.TensorInfo;
        try {
          cols = runBackendKernel(
            'BatchMatMul',
            backendName,
            backend,
            { a: dyChunk, b: wTInfo },
            { transposeA: false, transposeB: false },
          );
        } finally {
          if (dyValues != null) disposeInfo(backend, dyChunk);
        }
        const colValues = readValues(backend, cols) as Float32Array;
        disposeInfo(backend, cols);
        scatterColumns(colValues, info, first, count, dx);
      }
    } finally {
      disposeInfo(backend, wTInfo);
    }
    return writeTensor(backend, info.inShape, 'float32', dx);
  };
}

/** col2im: adds cols[m, k] (images [first, first + count)) onto the input pixels they came from. */
function scatterColumns(
  cols: Float32Array,
  info: Conv2DInfo,
  first: number,
  count: number,
  dx: Float32Array,
): void {
  const { inHeight, inWidth, inChannels, outHeight, outWidth, filterHeight, filterWidth } = info;
  const { strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const k = filterHeight * filterWidth * inChannels;
  for (let n = 0; n < count; n++) {
    for (let oh = 0; oh < outHeight; oh++) {
      for (let ow = 0; ow < outWidth; ow++) {
        const colBase = ((n * outHeight + oh) * outWidth + ow) * k;
        for (let fh = 0; fh < filterHeight; fh++) {
          const ih = oh * strideHeight + fh * dilationHeight - top;
          if (ih < 0 || ih >= inHeight) continue;
          for (let fw = 0; fw < filterWidth; fw++) {
            const iw = ow * strideWidth + fw * dilationWidth - left;
            if (iw < 0 || iw >= inWidth) continue;
            const xOff = (((first + n) * inHeight + ih) * inWidth + iw) * inChannels;
            const cOff = colBase + (fh * filterWidth + fw) * inChannels;
            for (let ci = 0; ci < inChannels; ci++) dx[xOff + ci]! += cols[cOff + ci]!;
          }
        }
      }
    }
  }
}
