/**
 * ResizeNearestNeighborGrad and ResizeBilinearGrad as the exact transposes of the forward
 * resize kernels (the same source-pixel and weight formulas as cpu's forward kernels, which
 * wasm's and webgl's agree with), for cpu, wasm and webgl. Stock TF.js 4.22 gets them wrong:
 * - every backend's grad kernels ignore `halfPixelCenters` (tf.image.resize* with it set);
 * - cpu's ResizeNearestNeighborGrad reads dy at the images' batch stride, so every image
 *   after the first gets another image's (or no) gradient (tf.layers.upSampling2d, batch > 1);
 * - cpu's ResizeBilinearGrad gives its result the shape [batch, width, height, depth], so the
 *   gradient of any non-square image throws.
 * Where stock is right (no halfPixelCenters; for cpu's nearest, a batch of one) the stock
 * kernel runs (its result relabelled with the right shape), so those first-order results are
 * unchanged bit for bit.
 */
import * as tf from '@tensorflow/tfjs';
import { asBackend, readValues, writeTensor } from './backend-access.js';

interface ResizeAttrs {
  alignCorners: boolean;
  halfPixelCenters: boolean;
}

/** Source-coordinate scale per output step, as the forward kernels compute it. */
function ratio(inSize: number, outSize: number, alignCorners: boolean): number {
  const corners = alignCorners && outSize > 1;
  return (corners ? inSize - 1 : inSize) / (corners ? outSize - 1 : outSize);
}

/** For each output row (or column), the nearest source row, as the forward kernel picks it. */
function nearestSources(inSize: number, outSize: number, a: ResizeAttrs): Int32Array {
  const r = ratio(inSize, outSize, a.alignCorners);
  const out = new Int32Array(outSize);
  for (let o = 0; o < outSize; o++) {
    const frac = a.halfPixelCenters ? r * (o + 0.5) : r * o;
    let s = Math.min(inSize - 1, a.alignCorners ? Math.round(frac) : Math.floor(frac));
    if (a.halfPixelCenters) s = Math.max(0, s);
    out[o] = s;
  }
  return out;
}

/** For each output row (or column): the two source rows and the second one's weight. */
function bilinearSources(inSize: number, outSize: number, a: ResizeAttrs) {
  const r = ratio(inSize, outSize, a.alignCorners);
  const low = new Int32Array(outSize);
  const high = new Int32Array(outSize);
  const weight = new Float64Array(outSize);
  for (let o = 0; o < outSize; o++) {
    const frac = a.halfPixelCenters ? r * (o + 0.5) - 0.5 : r * o;
    low[o] = Math.max(0, Math.floor(frac));
    high[o] = Math.min(inSize - 1, Math.ceil(frac));
    // Where low and high coincide both weights land on one pixel, whatever their split.
    weight[o] = frac - low[o]!;
  }
  return { low, high, weight };
}

type Scatter = (
  dy: Float32Array,
  dx: Float64Array,
  shapes: { batch: number; inH: number; inW: number; outH: number; outW: number; depth: number },
  a: ResizeAttrs,
) => void;

const scatterNearest: Scatter = (dy, dx, s, a) => {
  const rows = nearestSources(s.inH, s.outH, a);
  const cols = nearestSources(s.inW, s.outW, a);
  let i = 0;
  for (let b = 0; b < s.batch; b++) {
    for (let r = 0; r < s.outH; r++) {
      const rowBase = (b * s.inH + rows[r]!) * s.inW;
      for (let c = 0; c < s.outW; c++) {
        const base = (rowBase + cols[c]!) * s.depth;
        for (let d = 0; d < s.depth; d++) dx[base + d]! += dy[i++]!;
      }
    }
  }
};

const scatterBilinear: Scatter = (dy, dx, s, a) => {
  const rows = bilinearSources(s.inH, s.outH, a);
  const cols = bilinearSources(s.inW, s.outW, a);
  let i = 0;
  for (let b = 0; b < s.batch; b++) {
    for (let r = 0; r < s.outH; r++) {
      const top = (b * s.inH + rows.low[r]!) * s.inW;
      const bottom = (b * s.inH + rows.high[r]!) * s.inW;
      const rw = rows.weight[r]!;
      for (let c = 0; c < s.outW; c++) {
        const cw = cols.weight[c]!;
        const left = cols.low[c]!;
        const right = cols.high[c]!;
        const tl = (top + left) * s.depth;
        const tr = (top + right) * s.depth;
        const bl = (bottom + left) * s.depth;
        const br = (bottom + right) * s.depth;
        const wTl = (1 - rw) * (1 - cw);
        const wTr = (1 - rw) * cw;
        const wBl = rw * (1 - cw);
        const wBr = rw * cw;
        for (let d = 0; d < s.depth; d++) {
          const g = dy[i++]!;
          dx[tl + d]! += g * wTl;
          dx[tr + d]! += g * wTr;
          dx[bl + d]! += g * wBl;
          dx[br + d]! += g * wBr;
        }
      }
    }
  }
};

function makeResizeGrad(
  kernelName: string,
  scatter: Scatter,
  stockIsRight: (backendName: string, a: ResizeAttrs, batch: number) => boolean,
) {
  return (backendName: string, stock: tf.KernelConfig | undefined): tf.KernelFunc =>
    (args) => {
      const backend = asBackend(args.backend);
      const dy = args.inputs['dy']!;
      const images = args.inputs['images']!;
      const attrs = args.attrs ?? {};
      const a: ResizeAttrs = {
        alignCorners: attrs['alignCorners'] === true,
        halfPixelCenters: attrs['halfPixelCenters'] === true,
      };
      const [batch, inH, inW, depth] = images.shape as [number, number, number, number];
      if (stock != null && stockIsRight(backendName, a, batch)) {
        const out = stock.kernelFunc(args) as tf.TensorInfo;
        // cpu's bilinear kernel labels its (correctly laid out) result [batch, W, H, depth].
        return { dataId: out.dataId, shape: images.shape, dtype: out.dtype };
      }
      if (dy.shape.length !== 4 || dy.shape[0] !== batch || dy.shape[3] !== depth) {
        throw new Error(
          `${kernelName}: dy has shape [${dy.shape.join(',')}], which does not match images [${images.shape.join(',')}].`,
        );
      }
      const [, outH, outW] = dy.shape as [number, number, number, number];
      const dx = new Float64Array(batch * inH * inW * depth);
      const dyValues = readValues(backend, dy) as Float32Array;
      scatter(dyValues, dx, { batch, inH, inW, outH, outW, depth }, a);
      return writeTensor(backend, images.shape, 'float32', new Float32Array(dx));
    };
}

export const makeResizeNearestNeighborGrad = makeResizeGrad(
  'ResizeNearestNeighborGrad',
  scatterNearest,
  (backendName, a, batch) => !a.halfPixelCenters && (backendName !== 'cpu' || batch === 1),
);

export const makeResizeBilinearGrad = makeResizeGrad(
  'ResizeBilinearGrad',
  scatterBilinear,
  (_backendName, a) => !a.halfPixelCenters,
);
