import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, onBackend } from '../helpers.js';
import {
  isFastKernelRegistered,
  registerFastKernels,
  stockKernel,
  UnsupportedKernelAttributeError,
} from '../../src/kernels/index.js';
import {
  convInfo,
  describeCase,
  randomConvCase,
  randomValues,
  referenceFilterGrad,
  relativeMaxError,
  seededRandom,
  type ConvCase,
} from './reference-loops.js';

registerFastKernels();
const TOLERANCE = 2e-6;

function runFilterGrad(
  c: ConvCase,
  x: Float32Array,
  dy: Float32Array,
  extra: tf.NamedAttrMap = {},
) {
  const info = convInfo(c, false);
  const attrs = {
    strides: c.strides,
    dilations: c.dilations,
    pad: c.pad,
    dimRoundingMode: c.dimRoundingMode,
    dataFormat: 'NHWC',
    filterShape: c.filterShape,
    ...extra,
  } as unknown as tf.NamedAttrMap;
  return tf.tidy(() => {
    const out = tf
      .engine()
      .runKernel(
        'Conv2DBackpropFilter',
        { x: tf.tensor(x, c.xShape), dy: tf.tensor(dy, info.outShape) },
        attrs,
      ) as tf.Tensor;
    assert.deepEqual(out.shape, c.filterShape);
    return out.dataSync() as Float32Array;
  });
}

function caseData(c: ConvCase, seed: number) {
  const rand = seededRandom(seed);
  const info = convInfo(c, false);
  return {
    x: randomValues(rand, tf.util.sizeFromShape(c.xShape)),
    dy: randomValues(rand, tf.util.sizeFromShape(info.outShape)),
  };
}

for (const backend of TEST_BACKENDS) {
  test(`${backend}: Conv2DBackpropFilter is ours and matches a reference loop on random cases`, async () => {
    await onBackend(backend);
    if (backend === 'cpu' || backend === 'wasm') {
      assert.ok(isFastKernelRegistered('Conv2DBackpropFilter', backend));
    }
    const rand = seededRandom(1234);
    for (let i = 0; i < 40; i++) {
      const c = randomConvCase(rand, false);
      const { x, dy } = caseData(c, i);
      const got = runFilterGrad(c, x, dy);
      const err = relativeMaxError(got, referenceFilterGrad(convInfo(c, false), false, x, dy));
      assert.ok(err < TOLERANCE, `case ${i} ${describeCase(c)}: relative error ${err}`);
    }
  });

  test(`${backend}: Conv2DBackpropFilter, 'same' padding, stride 2, odd sizes`, async () => {
    await onBackend(backend);
    const c: ConvCase = {
      xShape: [3, 7, 9, 3],
      filterShape: [3, 3, 3, 5],
      strides: [2, 2],
      dilations: [1, 1],
      pad: 'same',
    };
    const { x, dy } = caseData(c, 7);
    const err = relativeMaxError(
      runFilterGrad(c, x, dy),
      referenceFilterGrad(convInfo(c, false), false, x, dy),
    );
    assert.ok(err < TOLERANCE, `relative error ${err}`);
  });

  test(`${backend}: Conv2DBackpropFilter over a batch processed in chunks`, async () => {
    await onBackend(backend);
    // K * positions per image = 288 * 2304, so the 8M-float patch limit splits this batch.
    const c: ConvCase = {
      xShape: [14, 48, 48, 32],
      filterShape: [3, 3, 32, 2],
      strides: [1, 1],
      dilations: [1, 1],
      pad: 'same',
    };
    const { x, dy } = caseData(c, 11);
    const err = relativeMaxError(
      runFilterGrad(c, x, dy),
      referenceFilterGrad(convInfo(c, false), false, x, dy),
    );
    assert.ok(err < 1e-5, `relative error ${err}`);
  });
}

test("Conv2DBackpropFilter equals cpu's stock kernel", async () => {
  await onBackend('cpu');
  const stock = stockKernel('Conv2DBackpropFilter', 'cpu');
  assert.ok(stock, 'the stock cpu kernel was saved');
  const rand = seededRandom(99);
  for (let i = 0; i < 15; i++) {
    const c = { ...randomConvCase(rand, false), dilations: [1, 1] as [number, number] };
    const { x, dy } = caseData(c, 100 + i);
    const expected = tf.tidy(() => {
      const info = convInfo(c, false);
      const xT = tf.tensor(x, c.xShape);
      const dyT = tf.tensor(dy, info.outShape);
      const out = stock.kernelFunc({
        inputs: { x: xT, dy: dyT },
        backend: tf.backend(),
        attrs: {
          strides: c.strides,
          pad: c.pad,
          dimRoundingMode: c.dimRoundingMode,
          dataFormat: 'NHWC',
          filterShape: c.filterShape,
        } as unknown as tf.NamedAttrMap,
      }) as tf.TensorInfo;
      return tf.engine().makeTensorFromTensorInfo(out).dataSync() as Float32Array;
    });
    const err = relativeMaxError(runFilterGrad(c, x, dy), expected);
    assert.ok(err < TOLERANCE, `case ${i} ${describeCase(c)}: relative error ${err}`);
  }
});

test('NCHW: wasm names the unsupported dataFormat, cpu hands it to its stock kernel', async () => {
  const x = new Float32Array(2 * 3 * 5 * 5).map((_, i) => Math.sin(i));
  const dy = new Float32Array(2 * 4 * 5 * 5).map((_, i) => Math.cos(i));
  const attrs = { strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 3, 4] };
  const run = () =>
    tf.tidy(() =>
      (
        tf
          .engine()
          .runKernel(
            'Conv2DBackpropFilter',
            { x: tf.tensor(x, [2, 3, 5, 5]), dy: tf.tensor(dy, [2, 4, 5, 5]) },
            attrs as unknown as tf.NamedAttrMap,
          ) as tf.Tensor
      ).dataSync(),
    );
  await onBackend('cpu');
  const cpuResult = run();
  // Same numbers with NHWC data and our kernel.
  const nhwc = tf.tidy(() =>
    (
      tf.engine().runKernel(
        'Conv2DBackpropFilter',
        {
          x: tf.transpose(tf.tensor(x, [2, 3, 5, 5]), [0, 2, 3, 1]),
          dy: tf.transpose(tf.tensor(dy, [2, 4, 5, 5]), [0, 2, 3, 1]),
        },
        { ...attrs, dataFormat: 'NHWC' } as unknown as tf.NamedAttrMap,
      ) as tf.Tensor
    ).dataSync(),
  );
  assert.ok(relativeMaxError(cpuResult, nhwc) < TOLERANCE);
  if (TEST_BACKENDS.includes('wasm')) {
    await onBackend('wasm');
    assert.throws(
      run,
      (e: unknown) =>
        e instanceof UnsupportedKernelAttributeError && /dataFormat 'NCHW'/.test(e.message),
    );
  }
});

test('registerFastKernels is idempotent and keeps the stock kernel it replaced', () => {
  const before = tf.getKernel('Conv2DBackpropFilter', 'cpu');
  registerFastKernels();
  registerFastKernels();
  assert.equal(tf.getKernel('Conv2DBackpropFilter', 'cpu'), before);
  assert.ok(!isFastKernelRegistered('Conv2D', 'cpu'));
  assert.notEqual(stockKernel('Conv2DBackpropFilter', 'cpu')?.kernelFunc, before?.kernelFunc);
});
