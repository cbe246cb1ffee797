import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { windowWinners } from '../../src/kernels/max-pool-winners.js';
import { seededRandom } from './reference-loops.js';

const SPECIALS = [NaN, -Infinity, Infinity, -0, 0, 0, 0, 1, 1, -1];

/** Relu-like data (many zeros, ties) sprinkled with NaN, infinities and -0. */
function data(n: number, rand: () => number): Float32Array {
  return Float32Array.from({ length: n }, () =>
    rand() < 0.3 ? SPECIALS[Math.floor(rand() * SPECIALS.length)]! : Math.max(0, rand() - 0.5),
  );
}

/** Each window's maximum as MaxPool computes it, from the scan's winners (NaN where none). */
function pooledFrom(x: Float32Array, winners: Int32Array): Float32Array {
  return Float32Array.from(winners, (at) => (at >= 0 ? x[at]! : NaN));
}

/** The smallest element of output k's window (its top-left corner when the window is cut). */
function smallest(
  x: Float32Array,
  info: ReturnType<typeof tf.backend_util.computePool2DInfo>,
  k: number,
) {
  const { inWidth, inHeight, inChannels: c, outHeight, outWidth } = info;
  const d = k % c;
  const ow = Math.floor(k / c) % outWidth;
  const oh = Math.floor(k / (c * outWidth)) % outHeight;
  const b = Math.floor(k / (c * outWidth * outHeight));
  const h0 = oh * 2 - info.padInfo.top;
  const w0 = ow * 2 - info.padInfo.left;
  let min = Infinity;
  for (let h = Math.max(0, h0); h < Math.min(inHeight, h0 + 2); h++) {
    for (let w = Math.max(0, w0); w < Math.min(inWidth, w0 + 2); w++) {
      const v = x[((b * inHeight + h) * inWidth + w) * c + d]!;
      if (v < min) min = v;
    }
  }
  return min;
}

test('the 2x2 winners found with the pooled maxima as a hint equal the plain scan', () => {
  const rand = seededRandom(5);
  for (const shape of [
    [2, 6, 8, 3],
    [1, 5, 7, 4], // odd sizes: windows cut by 'same' padding take the scan
  ] as [number, number, number, number][]) {
    for (const pad of ['valid', 'same'] as const) {
      const info = tf.backend_util.computePool2DInfo(shape, 2, 2, 1, pad);
      const x = data(tf.util.sizeFromShape(shape), rand);
      const plain = windowWinners(x, info);
      assert.deepEqual(windowWinners(x, info, pooledFrom(x, plain)), plain, `${shape} ${pad}`);
      // A hint that is not the maximum (another element of the window, a value above it, NaN,
      // -Infinity) must not change the result.
      const wrong = pooledFrom(x, plain).map(
        (m, i) => [smallest(x, info, i), m + 1, NaN, -Infinity][i % 4]!,
      );
      assert.deepEqual(windowWinners(x, info, wrong), plain, `${shape} ${pad}, wrong hint`);
    }
  }
});

test('ties go to the first maximum, -0 and +0 tie, and NaN or -Infinity never win', () => {
  const info = tf.backend_util.computePool2DInfo([1, 2, 2, 1], 2, 2, 1, 'valid');
  const cases: [number[], number][] = [
    [[0, 0, 0, 0], 0],
    [[-0, 0, 0, 0], 0],
    [[-1, 2, 2, 1], 1],
    [[NaN, 1, NaN, 1], 1],
    [[NaN, NaN, NaN, 3], 3],
    [[-Infinity, -Infinity, -Infinity, -Infinity], -1],
    [[NaN, NaN, NaN, NaN], -1],
  ];
  for (const [values, expected] of cases) {
    const x = Float32Array.from(values);
    const maxima = [Math.max(...values.filter((v) => !Number.isNaN(v)), -Infinity)];
    assert.deepEqual(Array.from(windowWinners(x, info)), [expected], `${values}`);
    assert.deepEqual(
      Array.from(windowWinners(x, info, Float32Array.from(maxima))),
      [expected],
      `${values} with hint`,
    );
  }
});
