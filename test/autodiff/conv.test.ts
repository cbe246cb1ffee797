import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
// Not src/index.js: importing it installs the second-order support, and the first test
// below needs TF.js as it was before installing.
import { installSecondOrderSupport } from '../../src/autodiff/install.js';
import { registerConvGradients } from '../../src/autodiff/gradients/conv.js';
import { registerPoolGradients } from '../../src/autodiff/gradients/pool.js';
import { registerConv3dGradients } from '../../src/autodiff/gradients/conv3d.js';
import { installDilatedFusedConvGradients } from '../../src/autodiff/gradients/fused-conv.js';
import { registerResizeGradients } from '../../src/autodiff/gradients/resize.js';
import { registerFastKernels } from '../../src/kernels/index.js';
import { convCases } from '../../src/autodiff/cases/conv.js';
import { allSecondOrderCases } from '../../src/autodiff/cases/index.js';
import { DEFAULT_FD_TOLERANCE } from '../../src/autodiff/check.js';
import { compareHvpWithFiniteDifferences } from '../../src/autodiff/finite-difference.js';
import { gradAndHvp } from '../../src/autodiff/hvp.js';
import { isSecondOrderVerified } from '../../src/autodiff/verified-kernels.js';
import { maxAbs, maxAbsDiff, onBackend, TEST_BACKENDS } from '../helpers.js';

type T4 = tf.Tensor4D;
type Shape4 = [number, number, number, number];

const input = (seed: number, shape: Shape4 = [2, 7, 7, 2]): T4 =>
  tf.randomNormal(shape, 0, 1, 'float32', seed);
const filter = (seed: number, shape: Shape4 = [3, 3, 2, 3]): T4 =>
  tf.randomNormal(shape, 0, 0.5, 'float32', seed);

/** Gradients of sum(sin(op(x, f))) with respect to x and f, downloaded. */
function gradsOf(op: (x: T4, f: T4) => tf.Tensor, fShape: Shape4 = [3, 3, 2, 3]): Float32Array[] {
  return tf.tidy(() => {
    const x = input(1);
    const f = filter(2, fShape);
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.sin(op(a as T4, b as T4))));
    return g([x, f]).map((t) => t.dataSync() as Float32Array);
  });
}

/** First-order gradients whose results our registrations must leave bit for bit unchanged. */
const unchangedFirstOrder: Record<string, () => Float32Array[]> = {
  'conv2d valid': () => gradsOf((x, f) => tf.conv2d(x, f, 1, 'valid')),
  'conv2d same, strides 2': () => gradsOf((x, f) => tf.conv2d(x, f, 2, 'same')),
  'conv2d + relu + maxPool 3x3 s2 same': () =>
    gradsOf((x, f) => tf.maxPool(tf.relu(tf.conv2d(x, f, 1, 'same')), 3, 2, 'same')),
  'conv2d + maxPool 2x2 s2': () =>
    gradsOf((x, f) => tf.maxPool(tf.conv2d(x, f, 1, 'same'), 2, 2, 'valid')),
  'conv2d + avgPool 2x2 s2 valid': () =>
    gradsOf((x, f) => tf.avgPool(tf.conv2d(x, f, 1, 'same'), 2, 2, 'valid')),
  'conv2d + avgPool 3x3 s1 valid': () =>
    gradsOf((x, f) => tf.avgPool(tf.conv2d(x, f, 1, 'same'), 3, 1, 'valid')),
  'fused conv2d relu': () =>
    gradsOf((x, f) =>
      tf.fused.conv2d({ x, filter: f, strides: 1, pad: 'same', activation: 'relu' }),
    ),
  'fused conv2d linear': () =>
    gradsOf((x, f) => tf.fused.conv2d({ x, filter: f, strides: 1, pad: 'same' })),
  depthwiseConv2d: () => gradsOf((x, f) => tf.depthwiseConv2d(x, f, 1, 'same'), [3, 3, 2, 2]),
  conv2dTranspose: () =>
    gradsOf((x, f) => tf.conv2dTranspose(x, f, [2, 14, 14, 3], 2, 'same'), [3, 3, 3, 2]),
  'conv3d same, strides 2': () =>
    tf.tidy(() => {
      const x = tf.randomNormal([2, 5, 5, 5, 2], 0, 1, 'float32', 7) as tf.Tensor5D;
      const f = tf.randomNormal([3, 3, 3, 2, 3], 0, 0.5, 'float32', 8) as tf.Tensor5D;
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.sin(tf.conv3d(a as tf.Tensor5D, b as tf.Tensor5D, 2, 'same'))),
      );
      return g([x, f]).map((t) => t.dataSync() as Float32Array);
    }),
  'conv2d + resizeNearestNeighbor x2 + resizeBilinear': () =>
    gradsOf((x, f) =>
      tf.image.resizeBilinear(
        tf.image.resizeNearestNeighbor(tf.conv2d(x, f, 1, 'same'), [14, 14]),
        [9, 9],
        true,
      ),
    ),
};

/** d/dx of sum(avgPool(x) * w), exactly: the transpose of the forward map, column by column. */
function avgPoolGradByBasis(xShape: Shape4, w: tf.Tensor, size: number, stride: number): tf.Tensor {
  return tf.tidy(() => {
    const n = xShape.reduce((a, b) => a * b);
    const basis: T4 = tf.reshape(tf.eye(n), [n * xShape[0], xShape[1], xShape[2], xShape[3]]);
    // Each basis image b (one batch entry of n) answers d/dx_b = sum(avgPool(e_b) * w).
    const pooled = tf.avgPool(basis, size, stride, 'same');
    const perImage = tf.reshape(pooled, [n, xShape[0], ...pooled.shape.slice(1)]);
    return tf.reshape(tf.sum(tf.mul(perImage, w), [1, 2, 3, 4]), xShape);
  });
}

describe('first-order conv and pool gradients', () => {
  it('are bit for bit unchanged by our registrations, except where stock TF.js fails or is wrong', async () => {
    // Stock TF.js gradients first: none of ours may be registered yet. The kernels are the
    // ones installing registers (wasm has no Conv2DBackpropFilter of its own), in both runs.
    assert.equal(tf.getGradient('Conv2DBackpropFilter'), undefined, 'stock TF.js to start with');
    registerFastKernels();
    const stock: Record<string, Record<string, Float32Array[]>> = {};
    for (const backend of TEST_BACKENDS) {
      await onBackend(backend);
      stock[backend] = {};
      for (const [name, f] of Object.entries(unchangedFirstOrder)) stock[backend]![name] = f();
      // Stock refuses dilated convs, and gets padded average pooling wrong (below).
      assert.throws(() => gradsOf((x, f) => tf.conv2d(x, f, 1, 'same', 'NHWC', 2)), /dilation/);
      assert.throws(
        () => gradsOf((x, f) => tf.depthwiseConv2d(x, f, 1, 'same', 'NHWC', 2), [3, 3, 2, 2]),
        /dilation/,
      );
      // The fused conv under a tape (tf.layers' path for a linear or non-fusable activation).
      assert.throws(
        () =>
          gradsOf((x, f) =>
            tf.fused.conv2d({ x, filter: f, strides: 1, pad: 'same', dilations: 2 }),
          ),
        /dilation/,
      );
    }
    const padded = (x: T4) => tf.avgPool(x, 3, 2, 'same');
    const w = tf.randomNormal([1, 3, 3, 2], 0, 1, 'float32', 3);
    const x = input(4, [1, 5, 5, 2]);
    await onBackend(TEST_BACKENDS[0]!);
    const stockPadded = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(padded(t as T4), w)))(x);

    registerConvGradients();
    registerPoolGradients();
    registerConv3dGradients();
    registerResizeGradients();
    installDilatedFusedConvGradients();

    for (const backend of TEST_BACKENDS) {
      await onBackend(backend);
      for (const [name, f] of Object.entries(unchangedFirstOrder)) {
        const ours = f();
        ours.forEach((g, i) =>
          assert.deepEqual(g, stock[backend]![name]![i], `${name}, gradient ${i}, on ${backend}`),
        );
      }
      // Padded average pooling: now the exact transpose of the forward kernel.
      const exact = avgPoolGradByBasis([1, 5, 5, 2], w, 3, 2);
      const ours = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(padded(t as T4), w)))(x);
      assert.ok(
        maxAbsDiff(ours, exact) <= 1e-6 * (1 + maxAbs(exact)),
        `avgPool same on ${backend}`,
      );
      if (backend === TEST_BACKENDS[0]) {
        assert.ok(maxAbsDiff(stockPadded, exact) > 0.05, 'stock avgPool same gradient is wrong');
      }
      tf.dispose([exact, ours]);
    }
    tf.dispose([w, x, stockPadded]);
  });

  for (const backend of TEST_BACKENDS) {
    it(`gives dilated conv2d the gradient of the equivalent zero-stuffed filter on ${backend}`, async () => {
      registerConvGradients();
      await onBackend(backend);
      const x = input(5, [2, 9, 9, 2]);
      const f = filter(6);
      // A 3x3 filter at dilation 2 is a 5x5 filter with zeros between its taps.
      const big = tf.buffer([5, 5, 2, 3]);
      const fv = f.arraySync();
      for (let i = 0; i < 3; i++)
        for (let j = 0; j < 3; j++)
          for (let c = 0; c < 2; c++)
            for (let o = 0; o < 3; o++) big.set(fv[i]![j]![c]![o]!, 2 * i, 2 * j, c, o);
      const bigF = big.toTensor() as T4;
      const head = (y: tf.Tensor) => tf.sum(tf.sin(y));
      const [gx, gf] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        head(tf.conv2d(a as T4, b as T4, 1, 'same', 'NHWC', 2)),
      )([x, f]);
      const [rx, rBig] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        head(tf.conv2d(a as T4, b as T4, 1, 'same')),
      )([x, bigF]);
      const rf = tf.stridedSlice(rBig!, [0, 0, 0, 0], [5, 5, 2, 3], [2, 2, 1, 1]);
      assert.ok(maxAbsDiff(gx!, rx!) <= 1e-5 * maxAbs(rx!), 'input gradient');
      assert.ok(maxAbsDiff(gf!, rf) <= 1e-5 * maxAbs(rf), 'filter gradient');
      tf.dispose([x, f, bigF, gx!, gf!, rx!, rBig!, rf]);
    });
  }
});

describe('conv and pool registrations', () => {
  it('are idempotent and mark the kernels they cover as verified', () => {
    installSecondOrderSupport();
    const configs = ['Conv2D', 'Conv2DBackpropFilter', 'MaxPoolGrad', 'AvgPool'].map((k) =>
      tf.getGradient(k),
    );
    registerConvGradients();
    registerPoolGradients();
    ['Conv2D', 'Conv2DBackpropFilter', 'MaxPoolGrad', 'AvgPool'].forEach((k, i) =>
      assert.equal(tf.getGradient(k), configs[i], k),
    );
    for (const k of [
      'Conv2D',
      'Conv2DBackpropInput',
      'Conv2DBackpropFilter',
      'DepthwiseConv2dNative',
      'DepthwiseConv2dNativeBackpropInput',
      'DepthwiseConv2dNativeBackpropFilter',
      'fusedConv2d__op',
      'MaxPool',
      'MaxPoolGrad',
      'AvgPool',
      'AvgPoolGrad',
    ]) {
      assert.ok(isSecondOrderVerified(k), k);
    }
  });

  it('are in the coverage table', () => {
    const names = new Set(allSecondOrderCases().map((c) => c.name));
    for (const c of convCases) assert.ok(names.has(c.name), c.name);
  });
});

/**
 * The gradient of a pool's grad kernel with respect to dy, against the transpose of the
 * kernel's own matrix S (column o = the kernel applied to the one-hot dy e_o). Also checks
 * that max pooling's S selects exactly one input per output, ties or not.
 */
function poolGradTransposeError(
  kernel: 'MaxPoolGrad' | 'AvgPoolGrad',
  x: T4,
  size: number,
  stride: number,
  pad: 'valid' | 'same',
): number {
  return tf.tidy(() => {
    const attrs = { filterSize: size, strides: stride, pad };
    const pool = kernel === 'MaxPoolGrad' ? tf.maxPool : tf.avgPool;
    const y = pool(x, size, stride, pad);
    const run = (dy: tf.Tensor, xs: tf.Tensor, ys: tf.Tensor) =>
      tf.engine().runKernel(kernel, { dy, input: xs, output: ys }, attrs) as tf.Tensor;
    const outCount = y.size;
    // Row o of eye(outCount) is e_o over all of y (every image); stack them along the batch.
    const oneHots = tf.reshape(tf.eye(outCount), [outCount * y.shape[0], ...y.shape.slice(1)]);
    const xs = tf.tile(x, [outCount, 1, 1, 1]);
    const ys = tf.tile(y, [outCount, 1, 1, 1]);
    const sTransposed = tf.reshape(run(oneHots, xs, ys), [outCount, -1]);
    if (kernel === 'MaxPoolGrad') {
      const perOutput = tf.sum(sTransposed, 1).dataSync();
      assert.ok(
        perOutput.every((v) => v === 1),
        'max pooling selects one input per output',
      );
    }
    const dxBar = tf.randomNormal(x.shape, 0, 1, 'float32', 11);
    const expected = tf.reshape(tf.matMul(sTransposed, tf.reshape(dxBar, [-1, 1])), y.shape);
    const dy0 = tf.randomNormal(y.shape, 0, 1, 'float32', 12);
    const ours = tf.grad((dy: tf.Tensor) => tf.sum(tf.mul(run(dy, x, y), dxBar)))(dy0);
    return maxAbsDiff(ours, expected) / maxAbs(expected);
  });
}

/** Windows (per channel) whose maximum is attained at two or more real inputs. */
function countTiedWindows(x: T4, size: number, stride: number, pad: 'valid' | 'same'): number {
  const info = tf.backend_util.computePool2DInfo(x.shape, size, stride, 1, pad);
  const v = x.arraySync();
  let tied = 0;
  for (let b = 0; b < x.shape[0]; b++) {
    for (let c = 0; c < x.shape[3]; c++) {
      for (let oh = 0; oh < info.outHeight; oh++) {
        for (let ow = 0; ow < info.outWidth; ow++) {
          const values: number[] = [];
          for (let i = 0; i < size; i++) {
            for (let j = 0; j < size; j++) {
              const r = oh * stride - info.padInfo.top + i;
              const q = ow * stride - info.padInfo.left + j;
              if (r >= 0 && r < x.shape[1] && q >= 0 && q < x.shape[2]) {
                values.push(v[b]![r]![q]![c]!);
              }
            }
          }
          const m = Math.max(...values);
          if (values.filter((u) => u === m).length > 1) tied++;
        }
      }
    }
  }
  return tied;
}

/** Images full of ties: relu of a coarse pattern (windows of zeros), and repeated values. */
function tiedImage(): T4 {
  return tf.tidy(() => {
    const coarse = tf.round(tf.randomUniform([2, 7, 7, 2], -2, 2, 'float32', 21));
    return tf.relu(coarse) as T4;
  });
}

const POOLS: [number, number, 'valid' | 'same'][] = [
  [2, 2, 'valid'],
  [3, 2, 'same'],
  [3, 1, 'valid'],
  [2, 1, 'same'],
];

for (const backend of TEST_BACKENDS) {
  describe(`second order of conv and pool on ${backend}`, () => {
    before(async () => {
      installSecondOrderSupport();
      await onBackend(backend);
    });

    it("MaxPoolGrad's gradient picks the inputs the kernel picks, ties included", () => {
      const x = tiedImage();
      for (const [size, stride, pad] of POOLS) {
        const tied = countTiedWindows(x, size, stride, pad);
        assert.ok(tied > 5, `the test image has ties for ${size}x${size}/${stride} ${pad}`);
        const err = poolGradTransposeError('MaxPoolGrad', x, size, stride, pad);
        assert.ok(err <= 1e-6, `${size}x${size} stride ${stride} ${pad}: ${err}`);
      }
      x.dispose();
    });

    it("AvgPoolGrad's gradient is the transpose of the kernel, padded windows included", () => {
      const x = input(31);
      for (const [size, stride, pad] of POOLS) {
        const err = poolGradTransposeError('AvgPoolGrad', x, size, stride, pad);
        assert.ok(err <= 1e-6, `${size}x${size} stride ${stride} ${pad}: ${err}`);
      }
      x.dispose();
    });

    for (const c of convCases) {
      const skipped = c.skipBackends?.includes(backend);
      it(`${c.name}: H v agrees with finite differences`, { skip: skipped }, (t) => {
        const p = c.build();
        try {
          const { relError } = compareHvpWithFiniteDifferences(p.lossFn, p.vars);
          t.diagnostic(`relError ${relError.toExponential(2)}`);
          assert.ok(relError <= DEFAULT_FD_TOLERANCE, `relative error ${relError}`);
        } finally {
          p.dispose();
        }
      });
    }

    it('leaks no tensors over repeated products through conv, depthwise and pool layers', () => {
      const names = [
        'maxPool 3x3 stride 2 same',
        'avgPool 3x3 stride 2 same',
        'conv2d same, dilations 2',
        'tf.layers.separableConv2d',
      ];
      const start = tf.memory().numTensors;
      for (const name of names) {
        const c = convCases.find((k) => k.name.startsWith(name))!;
        if (c.skipBackends?.includes(backend)) continue;
        const p = c.build();
        const v = p.vars.map((w, i) => tf.randomNormal(w.shape, 0, 1, 'float32', i));
        const run = () => {
          const r = gradAndHvp(p.lossFn, p.vars, v);
          tf.dispose([r.loss, ...r.grads, ...r.hvp]);
        };
        run();
        const before = tf.memory().numTensors;
        for (let i = 0; i < 10; i++) run();
        assert.equal(tf.memory().numTensors, before, name);
        tf.dispose(v);
        p.dispose();
      }
      assert.equal(tf.memory().numTensors, start, 'cases free what they build');
    });
  });
}
