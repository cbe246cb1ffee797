/**
 * First-order gradients of conv2d, depthwiseConv2d, gather, the pools, conv3d and the
 * resizes on wasm (which needs our kernels for several) against cpu's, on the same data.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, onBackend } from '../helpers.js';
import { installSecondOrderSupport } from '../../src/autodiff/install.js';
import { randomValues, relativeMaxError, seededRandom } from './reference-loops.js';

// The kernels and the gradients (dilated depthwise and fused convs have no stock gradient).
installSecondOrderSupport();

interface GradCase {
  name: string;
  /** Shapes of the differentiated inputs. */
  shapes: number[][];
  /** Non-differentiated int32 input (indices), if any. */
  indices?: { values: number[]; shape: number[] };
  f: (inputs: tf.Tensor[], indices: tf.Tensor | null) => tf.Tensor;
}

const CASES: GradCase[] = [
  {
    name: 'conv2d same stride 1',
    shapes: [
      [2, 6, 5, 3],
      [3, 3, 3, 4],
    ],
    f: ([x, w]) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'),
  },
  {
    name: 'conv2d same stride 2, odd sizes',
    shapes: [
      [3, 9, 7, 2],
      [3, 3, 2, 5],
    ],
    f: ([x, w]) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'same'),
  },
  {
    name: 'conv2d valid stride [2,1], 2x4 filter',
    shapes: [
      [2, 8, 9, 3],
      [2, 4, 3, 2],
    ],
    f: ([x, w]) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, [2, 1], 'valid'),
  },
  {
    name: 'conv2d explicit padding',
    shapes: [
      [1, 5, 6, 2],
      [3, 2, 2, 3],
    ],
    f: ([x, w]) =>
      tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, [
        [0, 0],
        [1, 2],
        [0, 1],
        [0, 0],
      ]),
  },
  {
    name: 'fused conv2d + bias + relu (as tf.layers uses)',
    shapes: [[2, 7, 7, 2], [3, 3, 2, 4], [4]],
    f: ([x, w, b]) =>
      tf.fused.conv2d({
        x: x as tf.Tensor4D,
        filter: w as tf.Tensor4D,
        bias: b!,
        strides: 1,
        pad: 'same',
        activation: 'relu',
      }),
  },
  {
    name: 'depthwiseConv2d same stride 2, multiplier 2, odd sizes',
    shapes: [
      [2, 9, 7, 3],
      [3, 3, 3, 2],
    ],
    f: ([x, w]) => tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'same'),
  },
  {
    name: 'depthwiseConv2d valid stride 1',
    shapes: [
      [1, 6, 6, 4],
      [2, 3, 4, 1],
    ],
    f: ([x, w]) => tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'valid'),
  },
  {
    name: 'separableConv2d',
    shapes: [
      [2, 6, 6, 3],
      [3, 3, 3, 2],
      [1, 1, 6, 4],
    ],
    f: ([x, dw, pw]) =>
      tf.separableConv2d(x as tf.Tensor4D, dw as tf.Tensor4D, pw as tf.Tensor4D, 1, 'same'),
  },
  {
    name: 'gather axis 0 (embedding, repeated ids)',
    shapes: [[10, 4]],
    indices: { values: [3, 1, 3, 9, 0, 3, 7, 1], shape: [2, 4] },
    f: ([table], ids) => tf.gather(table!, ids!, 0),
  },
  {
    name: 'gather axis 1',
    shapes: [[3, 6, 2]],
    indices: { values: [5, 0, 5, 2], shape: [4] },
    f: ([p], ids) => tf.gather(p!, ids!, 1),
  },
  {
    name: 'maxPool 2x2 stride 2 then avgPool 3x3 same stride 2',
    shapes: [[2, 9, 8, 3]],
    f: ([x]) => tf.avgPool(tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid'), 3, 2, 'same'),
  },
  {
    name: 'conv3d valid stride 1 (stock wasm backprop kernels are wrong)',
    shapes: [
      [2, 4, 5, 4, 2],
      [2, 3, 2, 2, 3],
    ],
    f: ([x, w]) => tf.conv3d(x as tf.Tensor5D, w as tf.Tensor5D, 1, 'valid'),
  },
  {
    name: 'conv3d same strides 2',
    shapes: [
      [2, 5, 5, 5, 2],
      [3, 3, 3, 2, 2],
    ],
    f: ([x, w]) => tf.conv3d(x as tf.Tensor5D, w as tf.Tensor5D, 2, 'same'),
  },
  {
    name: 'conv3d same dilations [1, 2, 2] (stock refuses its gradient)',
    shapes: [
      [2, 4, 6, 5, 2],
      [2, 2, 3, 2, 2],
    ],
    f: ([x, w]) => tf.conv3d(x as tf.Tensor5D, w as tf.Tensor5D, 1, 'same', 'NDHWC', [1, 2, 2]),
  },
  {
    name: 'depthwiseConv2d same dilations 2 (stock refuses its gradient)',
    shapes: [
      [2, 8, 7, 2],
      [3, 3, 2, 2],
    ],
    f: ([x, w]) => tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same', 'NHWC', 2),
  },
  {
    name: 'fused conv2d dilations 2 + bias, linear (as tf.layers uses; stock refuses)',
    shapes: [[2, 8, 8, 2], [3, 3, 2, 3], [3]],
    f: ([x, w, b]) =>
      tf.fused.conv2d({
        x: x as tf.Tensor4D,
        filter: w as tf.Tensor4D,
        bias: b!,
        strides: 1,
        pad: 'same',
        dilations: 2,
      }),
  },
  {
    name: 'resizeNearestNeighbor x2, batch 2 (stock cpu mixes up the images)',
    shapes: [[2, 4, 3, 2]],
    f: ([x]) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [8, 6]),
  },
  {
    name: 'resizeNearestNeighbor downsize, alignCorners',
    shapes: [[2, 7, 6, 2]],
    f: ([x]) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [3, 4], true),
  },
  {
    name: 'resizeBilinear x2',
    shapes: [[2, 4, 3, 2]],
    f: ([x]) => tf.image.resizeBilinear(x as tf.Tensor4D, [8, 6]),
  },
  {
    name: 'resizeBilinear 4x3 -> 7x5, halfPixelCenters',
    shapes: [[2, 4, 3, 2]],
    f: ([x]) => tf.image.resizeBilinear(x as tf.Tensor4D, [7, 5], false, true),
  },
];

/** Gradients of sum(f(inputs) * r) for a fixed random r, on the current backend. */
function gradients(c: GradCase, seed: number): Float32Array[] {
  const rand = seededRandom(seed);
  const values = c.shapes.map((s) => randomValues(rand, tf.util.sizeFromShape(s)));
  return tf.tidy(() => {
    const inputs = values.map((v, i) => tf.tensor(v, c.shapes[i]));
    const indices = c.indices ? tf.tensor(c.indices.values, c.indices.shape, 'int32') : null;
    const outShape = c.f(inputs, indices).shape;
    const r = tf.tensor(randomValues(rand, tf.util.sizeFromShape(outShape)), outShape);
    const grads = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(c.f(xs, indices), r)))(inputs);
    return grads.map((g) => g.dataSync() as Float32Array);
  });
}

test(
  'first-order gradients on wasm equal cpu',
  { skip: !TEST_BACKENDS.includes('wasm') },
  async () => {
    for (const [i, c] of CASES.entries()) {
      await onBackend('cpu');
      const expected = gradients(c, i);
      await onBackend('wasm');
      const before = tf.memory().numTensors;
      const got = gradients(c, i);
      assert.equal(tf.memory().numTensors, before, `${c.name}: tensors leaked`);
      got.forEach((g, j) => {
        const err = relativeMaxError(g, expected[j]!);
        assert.ok(err < 1e-5, `${c.name}, input ${j}: relative error ${err} against cpu`);
      });
    }
  },
);
