import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, onBackend } from '../helpers.js';
import {
  isFastKernelRegistered,
  registerFastKernels,
  stockKernel,
} from '../../src/kernels/index.js';
import {
  convInfo,
  describeCase,
  randomConvCase,
  randomValues,
  referenceInputGrad,
  relativeMaxError,
  seededRandom,
  type ConvCase,
} from './reference-loops.js';

registerFastKernels();
const TOLERANCE = 2e-6;

function caseData(c: ConvCase, seed: number) {
  const rand = seededRandom(seed);
  return {
    filter: randomValues(rand, tf.util.sizeFromShape(c.filterShape)),
    dy: randomValues(rand, tf.util.sizeFromShape(convInfo(c, false).outShape)),
  };
}

function runInputGrad(
  c: ConvCase,
  filter: Float32Array,
  dy: Float32Array,
  kernel?: tf.KernelConfig,
): Float32Array {
  const attrs = {
    strides: c.strides,
    pad: c.pad,
    dimRoundingMode: c.dimRoundingMode,
    dataFormat: 'NHWC',
    inputShape: c.xShape,
  } as unknown as tf.NamedAttrMap;
  return tf.tidy(() => {
    const inputs = {
      dy: tf.tensor(dy, convInfo(c, false).outShape),
      filter: tf.tensor(filter, c.filterShape),
    };
    const out =
      kernel == null
        ? (tf.engine().runKernel('Conv2DBackpropInput', inputs, attrs) as tf.Tensor)
        : tf
            .engine()
            .makeTensorFromTensorInfo(
              kernel.kernelFunc({ inputs, backend: tf.backend(), attrs }) as tf.TensorInfo,
            );
    assert.deepEqual(out.shape, c.xShape);
    return out.dataSync() as Float32Array;
  });
}

// Conv2DBackpropInput has no dilations attribute in TF.js, so cases use dilation 1.
const SAME_STRIDE_2_ODD: ConvCase = {
  xShape: [3, 9, 7, 3],
  filterShape: [3, 3, 3, 5],
  strides: [2, 2],
  dilations: [1, 1],
  pad: 'same',
};
const CHUNKED: ConvCase = {
  xShape: [14, 48, 48, 32],
  filterShape: [3, 3, 32, 2],
  strides: [1, 1],
  dilations: [1, 1],
  pad: 'same',
};

for (const backend of TEST_BACKENDS) {
  test(`${backend}: Conv2DBackpropInput matches a reference loop (random cases, same/stride 2/odd, chunked batch)`, async () => {
    await onBackend(backend);
    const rand = seededRandom(31337);
    const cases = [
      SAME_STRIDE_2_ODD,
      CHUNKED,
      ...Array.from({ length: 40 }, () => ({
        ...randomConvCase(rand, false),
        dilations: [1, 1] as [number, number],
      })),
    ];
    cases.forEach((c, i) => {
      const { filter, dy } = caseData(c, i);
      const err = relativeMaxError(
        runInputGrad(c, filter, dy),
        referenceInputGrad(convInfo(c, false), false, filter, dy),
      );
      assert.ok(err < TOLERANCE, `case ${i} ${describeCase(c)}: relative error ${err}`);
    });
  });
}

test(
  "wasm: Conv2DBackpropInput is ours and equals wasm's stock kernel",
  { skip: !TEST_BACKENDS.includes('wasm') },
  async () => {
    await onBackend('wasm');
    assert.ok(isFastKernelRegistered('Conv2DBackpropInput', 'wasm'));
    assert.ok(!isFastKernelRegistered('Conv2DBackpropInput', 'cpu'));
    const stock = stockKernel('Conv2DBackpropInput', 'wasm')!;
    assert.ok(stock, 'the stock wasm kernel was saved');
    // Replaced before the backend initialised, so its one-time setup (binding the C++ entry
    // point) never ran.
    stock.setupFunc?.(tf.backend());
    const rand = seededRandom(8080);
    for (let i = 0; i < 15; i++) {
      const c = { ...randomConvCase(rand, false), dilations: [1, 1] as [number, number] };
      const { filter, dy } = caseData(c, 500 + i);
      const err = relativeMaxError(runInputGrad(c, filter, dy), runInputGrad(c, filter, dy, stock));
      assert.ok(err < TOLERANCE, `case ${i} ${describeCase(c)}: relative error ${err}`);
    }
  },
);
