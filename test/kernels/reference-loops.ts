/**
 * Straightforward reference loops for the kernels in src/kernels, written from the
 * definition of the forward convolution / segment sum (no blocking, no im2col), plus a
 * seeded random generator so failures reproduce.
 */
import * as tf from '@tensorflow/tfjs';

export type Conv2DInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;
type Pad = Parameters<typeof tf.backend_util.computeConv2DInfo>[4];

export interface ConvCase {
  xShape: [number, number, number, number];
  filterShape: [number, number, number, number];
  strides: [number, number];
  dilations: [number, number];
  pad: Pad;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

export function convInfo(c: ConvCase, depthwise: boolean): Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    c.xShape,
    c.filterShape,
    c.strides,
    c.dilations,
    c.pad,
    c.dimRoundingMode,
    depthwise,
    'channelsLast',
  );
}

/** Calls visit(xIndex, filterIndex, yIndex) for every product of the forward convolution. */
function forEachTap(
  info: Conv2DInfo,
  depthwise: boolean,
  visit: (xi: number, fi: number, yi: number) => void,
): void {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const multiplier = outChannels / inChannels;
  for (let n = 0; n < batchSize; n++)
    for (let oh = 0; oh < outHeight; oh++)
      for (let ow = 0; ow < outWidth; ow++)
        for (let fh = 0; fh < info.filterHeight; fh++)
          for (let fw = 0; fw < info.filterWidth; fw++) {
            const ih = oh * info.strideHeight + fh * info.dilationHeight - info.padInfo.top;
            const iw = ow * info.strideWidth + fw * info.dilationWidth - info.padInfo.left;
            if (ih < 0 || ih >= inHeight || iw < 0 || iw >= inWidth) continue;
            for (let ci = 0; ci < inChannels; ci++) {
              const xi = ((n * inHeight + ih) * inWidth + iw) * inChannels + ci;
              const yBase = ((n * outHeight + oh) * outWidth + ow) * outChannels;
              const fBase = (fh * info.filterWidth + fw) * inChannels;
              if (depthwise) {
                for (let q = 0; q < multiplier; q++) {
                  const co = ci * multiplier + q;
                  visit(xi, (fBase + ci) * multiplier + q, yBase + co);
                }
              } else {
                for (let co = 0; co < outChannels; co++) {
                  visit(xi, (fBase + ci) * outChannels + co, yBase + co);
                }
              }
            }
          }
}

export function referenceFilterGrad(
  info: Conv2DInfo,
  depthwise: boolean,
  x: Float32Array,
  dy: Float32Array,
): Float64Array {
  const size =
    info.filterHeight *
    info.filterWidth *
    info.inChannels *
    (depthwise ? info.outChannels / info.inChannels : info.outChannels);
  const dw = new Float64Array(size);
  forEachTap(info, depthwise, (xi, fi, yi) => {
    dw[fi]! += x[xi]! * dy[yi]!;
  });
  return dw;
}

export function referenceInputGrad(
  info: Conv2DInfo,
  depthwise: boolean,
  filter: Float32Array,
  dy: Float32Array,
): Float64Array {
  const dx = new Float64Array(info.batchSize * info.inHeight * info.inWidth * info.inChannels);
  forEachTap(info, depthwise, (xi, fi, yi) => {
    dx[xi]! += filter[fi]! * dy[yi]!;
  });
  return dx;
}

export function referenceSegmentSum(
  x: Float32Array,
  ids: Int32Array,
  inner: number,
  numSegments: number,
): Float64Array {
  const out = new Float64Array(numSegments * inner);
  ids.forEach((id, row) => {
    if (id < 0 || id >= numSegments) return;
    for (let j = 0; j < inner; j++) out[id * inner + j]! += x[row * inner + j]!;
  });
  return out;
}

/** A small seeded generator: the project's mulberry32. */
export { mulberry32 as seededRandom } from '../../src/util/mulberry32.js';

export function randomInt(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

export function randomValues(rand: () => number, size: number): Float32Array {
  return Float32Array.from({ length: size }, () => rand() * 2 - 1);
}

/** max |actual - expected| / max(1, max |expected|). */
export function relativeMaxError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) {
    throw new Error(`length ${actual.length} != expected length ${expected.length}`);
  }
  let diff = 0;
  let scale = 1;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return diff / scale;
}

/** A random convolution case; depthwise cases get a channel multiplier as filterShape[3]. */
export function randomConvCase(rand: () => number, depthwise: boolean): ConvCase {
  const batch = randomInt(rand, 1, 3);
  const height = randomInt(rand, 1, 9);
  const width = randomInt(rand, 1, 9);
  const inChannels = randomInt(rand, 1, 4);
  const lastDim = depthwise ? randomInt(rand, 1, 3) : randomInt(rand, 1, 5);
  const dilated = rand() < 0.3;
  const dilations: [number, number] = dilated
    ? [randomInt(rand, 1, 2), randomInt(rand, 1, 3)]
    : [1, 1];
  const strides: [number, number] = dilated
    ? [1, 1]
    : [randomInt(rand, 1, 3), randomInt(rand, 1, 3)];
  const fh = randomInt(rand, 1, 4);
  const fw = randomInt(rand, 1, 4);
  const kind = randomInt(rand, 0, 3);
  let pad: Pad = 'same';
  let dimRoundingMode: ConvCase['dimRoundingMode'];
  if (kind === 1) pad = 'valid';
  if (kind === 2) {
    pad = randomInt(rand, 0, 2);
    dimRoundingMode = (['floor', 'round', 'ceil'] as const)[randomInt(rand, 0, 2)];
  }
  if (kind === 3) {
    pad = [
      [0, 0],
      [randomInt(rand, 0, 2), randomInt(rand, 0, 2)],
      [randomInt(rand, 0, 2), randomInt(rand, 0, 2)],
      [0, 0],
    ];
  }
  const c: ConvCase = {
    xShape: [batch, height, width, inChannels],
    filterShape: [fh, fw, inChannels, lastDim],
    strides,
    dilations,
    pad,
    dimRoundingMode,
  };
  // Draw again when the output would be empty (valid padding with a filter wider than x).
  const info = convInfo(c, depthwise);
  return info.outHeight > 0 && info.outWidth > 0 ? c : randomConvCase(rand, depthwise);
}

export function describeCase(c: ConvCase): string {
  return JSON.stringify(c);
}
