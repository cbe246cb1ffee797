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
  referenceFilterGrad,
  referenceInputGrad,
  relativeMaxError,
  seededRandom,
  type ConvCase,
} from './reference-loops.js';

registerFastKernels();
const TOLERANCE = 2e-6;

function attrsOf(c: ConvCase, extra: Record<string, unknown>): tf.NamedAttrMap {
  return {
    strides: c.strides,
    dilations: c.dilations,
    pad: c.pad,
    dimRoundingMode: c.dimRoundingMode,
    ...extra,
  } as unknown as tf.NamedAttrMap;
}

function caseData(c: ConvCase, seed: number) {
  const rand = seededRandom(seed);
  const info = convInfo(c, true);
  return {
    x: randomValues(rand, tf.util.sizeFromShape(c.xShape)),
    filter: randomValues(rand, tf.util.sizeFromShape(c.filterShape)),
    dy: randomValues(rand, tf.util.sizeFromShape(info.outShape)),
  };
}

function runFilterGrad(c: ConvCase, x: Float32Array, dy: Float32Array): Float32Array {
  return tf.tidy(() => {
    const out = tf
      .engine()
      .runKernel(
        'DepthwiseConv2dNativeBackpropFilter',
        { x: tf.tensor(x, c.xShape), dy: tf.tensor(dy, convInfo(c, true).outShape) },
        attrsOf(c, { filterShape: c.filterShape }),
      ) as tf.Tensor;
    assert.deepEqual(out.shape, c.filterShape);
    return out.dataSync() as Float32Array;
  });
}

function runInputGrad(c: ConvCase, filter: Float32Array, dy: Float32Array): Float32Array {
  return tf.tidy(() => {
    const out = tf
      .engine()
      .runKernel(
        'DepthwiseConv2dNativeBackpropInput',
        { dy: tf.tensor(dy, convInfo(c, true).outShape), filter: tf.tensor(filter, c.filterShape) },
        attrsOf(c, { inputShape: c.xShape }),
      ) as tf.Tensor;
    assert.deepEqual(out.shape, c.xShape);
    return out.dataSync() as Float32Array;
  });
}

const SAME_STRIDE_2_ODD: ConvCase = {
  xShape: [2, 9, 7, 3],
  filterShape: [3, 3, 3, 2],
  strides: [2, 2],
  dilations: [1, 1],
  pad: 'same',
};

for (const backend of TEST_BACKENDS) {
  test(`${backend}: depthwise filter and input gradients match reference loops on random cases`, async () => {
    await onBackend(backend);
    if (backend === 'cpu' || backend === 'wasm') {
      assert.ok(isFastKernelRegistered('DepthwiseConv2dNativeBackpropFilter', backend));
      assert.ok(isFastKernelRegistered('DepthwiseConv2dNativeBackpropInput', backend));
    }
    const rand = seededRandom(4321);
    const cases = [
      SAME_STRIDE_2_ODD,
      ...Array.from({ length: 40 }, () => randomConvCase(rand, true)),
    ];
    cases.forEach((c, i) => {
      const info = convInfo(c, true);
      const { x, filter, dy } = caseData(c, i);
      const filterErr = relativeMaxError(
        runFilterGrad(c, x, dy),
        referenceFilterGrad(info, true, x, dy),
      );
      assert.ok(
        filterErr < TOLERANCE,
        `filter grad, case ${i} ${describeCase(c)}: relative error ${filterErr}`,
      );
      const inputErr = relativeMaxError(
        runInputGrad(c, filter, dy),
        referenceInputGrad(info, true, filter, dy),
      );
      assert.ok(
        inputErr < TOLERANCE,
        `input grad, case ${i} ${describeCase(c)}: relative error ${inputErr}`,
      );
    });
  });
}

test("cpu: depthwise gradients equal cpu's stock kernels at dilation 1", async () => {
  await onBackend('cpu');
  // cpu's stock kernels ignore `dilations`, so they are only a reference at dilation 1.
  const stockFilter = stockKernel('DepthwiseConv2dNativeBackpropFilter', 'cpu')!;
  const stockInput = stockKernel('DepthwiseConv2dNativeBackpropInput', 'cpu')!;
  assert.ok(stockFilter && stockInput, 'the stock cpu kernels were saved');
  const runStock = (config: tf.KernelConfig, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap) =>
    tf.tidy(() => {
      const out = config.kernelFunc({ inputs, backend: tf.backend(), attrs }) as tf.TensorInfo;
      return tf.engine().makeTensorFromTensorInfo(out).dataSync() as Float32Array;
    });
  const rand = seededRandom(5);
  for (let i = 0; i < 15; i++) {
    const c = { ...randomConvCase(rand, true), dilations: [1, 1] as [number, number] };
    const { x, filter, dy } = caseData(c, 50 + i);
    const outShape = convInfo(c, true).outShape;
    const expectedFilter = runStock(
      stockFilter,
      { x: tf.tensor(x, c.xShape), dy: tf.tensor(dy, outShape) },
      attrsOf(c, { filterShape: c.filterShape }),
    );
    const filterErr = relativeMaxError(runFilterGrad(c, x, dy), expectedFilter);
    assert.ok(
      filterErr < TOLERANCE,
      `filter grad, case ${i} ${describeCase(c)}: relative error ${filterErr}`,
    );
    const expectedInput = runStock(
      stockInput,
      { dy: tf.tensor(dy, outShape), filter: tf.tensor(filter, c.filterShape) },
      attrsOf(c, { inputShape: c.xShape }),
    );
    const inputErr = relativeMaxError(runInputGrad(c, filter, dy), expectedInput);
    assert.ok(
      inputErr < TOLERANCE,
      `input grad, case ${i} ${describeCase(c)}: relative error ${inputErr}`,
    );
  }
});
