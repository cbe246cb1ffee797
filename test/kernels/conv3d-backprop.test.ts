/**
 * The conv3d backprop kernels against the exact transpose of the forward conv3d, built
 * column by column from one-hot inputs (the forward kernel agrees on every backend), on
 * every test backend, with the kernels that registerFastKernels leaves registered. Stock
 * wasm's are checked to be wrong, which is why ours replace them there.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, onBackend } from '../helpers.js';
import {
  isFastKernelRegistered,
  registerFastKernels,
  stockKernel,
} from '../../src/kernels/index.js';
import { randomValues, relativeMaxError, seededRandom } from './reference-loops.js';

registerFastKernels();

type Shape5 = [number, number, number, number, number];

interface Conv3DCase {
  x: Shape5;
  filter: Shape5;
  strides: number | [number, number, number];
  pad: 'valid' | 'same';
}

const CASES: Conv3DCase[] = [
  { x: [2, 4, 4, 4, 2], filter: [2, 2, 2, 2, 3], strides: 1, pad: 'valid' },
  { x: [1, 5, 5, 5, 2], filter: [3, 3, 3, 2, 2], strides: 2, pad: 'same' },
  { x: [2, 3, 5, 4, 1], filter: [1, 3, 2, 1, 2], strides: [1, 2, 1], pad: 'same' },
  { x: [1, 5, 4, 6, 3], filter: [2, 2, 3, 3, 1], strides: [2, 1, 3], pad: 'valid' },
];

const describeCase = (c: Conv3DCase) =>
  `x ${c.x.join('x')}, filter ${c.filter.join('x')}, strides ${String(c.strides)}, ${c.pad}`;

/** The columns of the linear map v -> op(v), one per entry of v: [size(v), size(op(v))]. */
function jacobian(shape: number[], op: (batchOfOneHots: tf.Tensor) => tf.Tensor): tf.Tensor2D {
  return tf.tidy(() => {
    const n = tf.util.sizeFromShape(shape);
    const oneHots = tf.reshape(tf.eye(n), [n, ...shape]);
    return tf.reshape(op(oneHots), [n, -1]) as tf.Tensor2D;
  });
}

/** Exact BPI(dy) and BPF(dy) as the transposed forward maps applied to dy. */
function expected(c: Conv3DCase, x: tf.Tensor, f: tf.Tensor, dy: tf.Tensor) {
  return tf.tidy(() => {
    const dyColumn = tf.reshape(dy, [-1, 1]);
    // x enters the batch: one image per one-hot; the filter is fixed.
    const perX = jacobian(c.x.slice(1), (xs) =>
      tf.conv3d(xs as tf.Tensor5D, f as tf.Tensor5D, c.strides, c.pad),
    );
    // The batch is part of each one-hot input: run them one example at a time.
    const batch = c.x[0];
    const dyPerExample = tf.reshape(dy, [batch, -1]);
    const dx = tf.matMul(dyPerExample, perX, false, true);
    const xsPerFilter = tf.util.sizeFromShape(c.filter);
    const filterOneHots = tf.reshape(tf.eye(xsPerFilter), [xsPerFilter, ...c.filter]);
    const perFilter = tf.stack(
      tf
        .unstack(filterOneHots)
        .map((e) =>
          tf.reshape(tf.conv3d(x as tf.Tensor5D, e as tf.Tensor5D, c.strides, c.pad), [-1]),
        ),
    );
    const dw = tf.matMul(perFilter, dyColumn);
    return {
      dx: tf.reshape(dx, c.x).dataSync() as Float32Array,
      dw: tf.reshape(dw, c.filter).dataSync() as Float32Array,
    };
  });
}

function runKernels(
  c: Conv3DCase,
  x: tf.Tensor,
  f: tf.Tensor,
  dy: tf.Tensor,
  backend: string,
  stock = false,
) {
  const run = (name: string, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap) => {
    const config = stock ? stockKernel(name, backend) : tf.getKernel(name, backend);
    const b = tf.backend();
    const info = config!.kernelFunc({ inputs, backend: b, attrs }) as tf.TensorInfo;
    const values = Float32Array.from(b.readSync(info.dataId) as Float32Array);
    b.disposeData(info.dataId);
    return values;
  };
  return {
    dx: run(
      'Conv3DBackpropInputV2',
      { dy, filter: f },
      {
        strides: c.strides,
        pad: c.pad,
        inputShape: c.x,
      },
    ),
    dw: run(
      'Conv3DBackpropFilterV2',
      { x, dy },
      {
        strides: c.strides,
        pad: c.pad,
        filterShape: c.filter,
      },
    ),
  };
}

for (const backend of TEST_BACKENDS) {
  test(`conv3d backprop kernels are the transpose of conv3d on ${backend}`, async () => {
    await onBackend(backend);
    if (backend === 'wasm') {
      assert.ok(isFastKernelRegistered('Conv3DBackpropInputV2', 'wasm'));
      assert.ok(isFastKernelRegistered('Conv3DBackpropFilterV2', 'wasm'));
    }
    let stockWrong = 0;
    for (const [i, c] of CASES.entries()) {
      const rand = seededRandom(100 + i);
      const x = tf.tensor(randomValues(rand, tf.util.sizeFromShape(c.x)), c.x);
      const f = tf.tensor(randomValues(rand, tf.util.sizeFromShape(c.filter)), c.filter);
      const outShape = tf.tidy(
        () => tf.conv3d(x as tf.Tensor5D, f as tf.Tensor5D, c.strides, c.pad).shape,
      );
      const dy = tf.tensor(randomValues(rand, tf.util.sizeFromShape(outShape)), outShape);
      const want = expected(c, x, f, dy);
      const before = tf.memory().numTensors;
      const got = runKernels(c, x, f, dy, backend);
      assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
      const dxErr = relativeMaxError(got.dx, want.dx);
      const dwErr = relativeMaxError(got.dw, want.dw);
      assert.ok(dxErr < 1e-5, `${describeCase(c)}: input gradient off by ${dxErr}`);
      assert.ok(dwErr < 1e-5, `${describeCase(c)}: filter gradient off by ${dwErr}`);
      if (backend === 'wasm') {
        const stock = runKernels(c, x, f, dy, backend, true);
        const err = Math.max(
          relativeMaxError(stock.dx, want.dx),
          relativeMaxError(stock.dw, want.dw),
        );
        if (err > 1e-2) stockWrong++;
      }
      tf.dispose([x, f, dy]);
    }
    if (backend === 'wasm') assert.equal(stockWrong, CASES.length, 'stock wasm kernels are wrong');
  });
}

test('conv3d backprop kernels refuse NCDHW with a clear message', async () => {
  await onBackend(TEST_BACKENDS[0]!);
  const kernel = tf.getKernel('Conv3DBackpropFilterV2', 'wasm')!;
  const x = tf.zeros([1, 2, 2, 2, 1]);
  const dy = tf.zeros([1, 2, 2, 2, 1]);
  assert.throws(
    () =>
      kernel.kernelFunc({
        inputs: { x, dy },
        backend: tf.backend(),
        attrs: { strides: 1, pad: 'same', filterShape: [1, 1, 1, 1, 1], dataFormat: 'NCDHW' },
      }),
    /Conv3DBackpropFilterV2: dataFormat 'NCDHW' is not supported/,
  );
  tf.dispose([x, dy]);
});
