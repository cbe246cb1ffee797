import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, onBackend } from '../helpers.js';
import {
  MAX_POOL_GRAD_TRANSPOSE,
  isFastKernelRegistered,
  registerFastKernels,
  stockKernel,
} from '../../src/kernels/index.js';
import { randomInt, relativeMaxError, seededRandom } from './reference-loops.js';

registerFastKernels();

interface PoolCase {
  xShape: [number, number, number, number];
  filterSize: [number, number];
  strides: [number, number];
  pad: 'same' | 'valid' | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function poolInfo(c: PoolCase) {
  return tf.backend_util.computePool2DInfo(
    c.xShape,
    c.filterSize,
    c.strides,
    1,
    c.pad,
    c.dimRoundingMode,
  );
}

function randomPoolCase(rand: () => number): PoolCase {
  const c: PoolCase = {
    xShape: [
      randomInt(rand, 1, 3),
      randomInt(rand, 1, 9),
      randomInt(rand, 1, 9),
      randomInt(rand, 1, 4),
    ],
    filterSize: [randomInt(rand, 1, 3), randomInt(rand, 1, 3)],
    strides: [randomInt(rand, 1, 3), randomInt(rand, 1, 3)],
    // Numeric pads are left out: wasm's stock forward MaxPool corrupts its heap on some of them.
    pad: (['same', 'valid'] as const)[randomInt(rand, 0, 1)],
  };
  const info = poolInfo(c);
  return info.outHeight > 0 && info.outWidth > 0 ? c : randomPoolCase(rand);
}

/** Mostly negative values on a coarse grid, so windows of only negatives and ties both occur. */
function poolData(c: PoolCase, rand: () => number) {
  const info = poolInfo(c);
  return {
    x: Float32Array.from(
      { length: tf.util.sizeFromShape(c.xShape) },
      () => randomInt(rand, -8, 2) / 4,
    ),
    dy: Float32Array.from({ length: tf.util.sizeFromShape(info.outShape) }, () => rand() * 2 - 1),
    outShape: info.outShape,
  };
}

function runMaxPoolGrad(
  c: PoolCase,
  x: Float32Array,
  dy: Float32Array,
  outShape: number[],
  kernel?: tf.KernelConfig,
) {
  return tf.tidy(() => {
    const input = tf.tensor(x, c.xShape) as tf.Tensor4D;
    const output = tf.maxPool(input, c.filterSize, c.strides, c.pad, c.dimRoundingMode);
    const inputs = { dy: tf.tensor(dy, outShape), input, output };
    const attrs = {
      filterSize: c.filterSize,
      strides: c.strides,
      pad: c.pad,
      dimRoundingMode: c.dimRoundingMode,
    };
    const out =
      kernel == null
        ? (tf
            .engine()
            .runKernel('MaxPoolGrad', inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor)
        : tf.engine().makeTensorFromTensorInfo(
            kernel.kernelFunc({
              inputs,
              backend: tf.backend(),
              attrs: attrs as unknown as tf.NamedAttrMap,
            }) as tf.TensorInfo,
          );
    assert.deepEqual(out.shape, c.xShape);
    return out.dataSync() as Float32Array;
  });
}

/** cpu's own MaxPoolGrad (the reference), whether or not we replaced it there. */
function cpuStockKernel(): tf.KernelConfig {
  return stockKernel('MaxPoolGrad', 'cpu') ?? tf.getKernel('MaxPoolGrad', 'cpu')!;
}

for (const backend of TEST_BACKENDS) {
  test(`${backend}: MaxPoolGrad equals cpu's stock kernel, negative windows and ties included`, async () => {
    if (backend === 'cpu' || backend === 'wasm')
      assert.ok(isFastKernelRegistered('MaxPoolGrad', backend));
    const rand = seededRandom(2024);
    for (let i = 0; i < 40; i++) {
      const c = randomPoolCase(rand);
      const { x, dy, outShape } = poolData(c, rand);
      await onBackend('cpu');
      const expected = runMaxPoolGrad(c, x, dy, outShape, cpuStockKernel());
      await onBackend(backend);
      const err = relativeMaxError(runMaxPoolGrad(c, x, dy, outShape), expected);
      assert.ok(err < 1e-6, `case ${i} ${JSON.stringify(c)}: relative error ${err}`);
    }
  });
}

test(
  'wasm: MaxPoolGrad routes a window of negatives to its maximum (stock wasm 4.22 does not)',
  { skip: !TEST_BACKENDS.includes('wasm') },
  async () => {
    await onBackend('wasm');
    assert.ok(isFastKernelRegistered('MaxPoolGrad', 'wasm'));
    const grad = tf.tidy(() => {
      const x = tf.tensor4d([-4, -3, -2, -1], [1, 2, 2, 1]);
      return Array.from(
        tf
          .grad((v: tf.Tensor) => tf.sum(tf.maxPool(v as tf.Tensor4D, 2, 2, 'valid')))(x)
          .dataSync(),
      );
    });
    assert.deepEqual(grad, [0, 0, 0, 1]);
  },
);

/** Each output's winner as the stock cpu MaxPoolGrad routes a one-hot dy (-1: none). */
function stockWinners(c: PoolCase, x: Float32Array, outShape: number[]): number[] {
  const outSize = tf.util.sizeFromShape(outShape);
  return Array.from({ length: outSize }, (_, k) => {
    const dy = new Float32Array(outSize);
    dy[k] = 1;
    const dx = runMaxPoolGrad(c, x, dy, outShape, cpuStockKernel());
    return dx.findIndex((v) => v !== 0);
  });
}

for (const backend of TEST_BACKENDS) {
  test(`${backend}: MaxPoolGradTranspose reads dxBar at the windows' winners (ties, overlaps)`, async () => {
    if (backend === 'cpu' || backend === 'wasm') {
      assert.ok(isFastKernelRegistered(MAX_POOL_GRAD_TRANSPOSE, backend));
    }
    const rand = seededRandom(77);
    for (let i = 0; i < 12; i++) {
      const c = randomPoolCase(rand);
      const { x, outShape } = poolData(c, rand);
      const dxBar = Float32Array.from({ length: x.length }, () => rand() * 2 - 1);
      await onBackend('cpu');
      const expected = stockWinners(c, x, outShape).map((at) => (at >= 0 ? dxBar[at]! : 0));
      await onBackend(backend);
      const got = tf.tidy(() => {
        const input = tf.tensor(x, c.xShape) as tf.Tensor4D;
        const output = tf.maxPool(input, c.filterSize, c.strides, c.pad);
        const attrs = { filterSize: c.filterSize, strides: c.strides, pad: c.pad };
        const out = tf
          .engine()
          .runKernel(
            MAX_POOL_GRAD_TRANSPOSE,
            { dxBar: tf.tensor(dxBar, c.xShape), input, output },
            attrs as unknown as tf.NamedAttrMap,
          ) as tf.Tensor;
        assert.deepEqual(out.shape, outShape);
        return Array.from(out.dataSync());
      });
      assert.deepEqual(
        got,
        Array.from(Float32Array.from(expected)),
        `case ${i} ${JSON.stringify(c)}`,
      );
    }
  });
}
