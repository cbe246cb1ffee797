/**
 * Step-graph translations of the convolution and pooling kernels (translate-conv.ts): each
 * kernel call recorded alone, built into a graph and run by ONNX Runtime, against TF.js's own
 * cpu kernel on random inputs (strides 1 and 2, 'same' and 'valid', dilation, odd sizes, max
 * pooling's ties and empty windows); and a small CNN's AdaHessian minimize replayed as step
 * graphs against op by op over several steps. No tensor leaks.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { adahessian, buildSmallCnn, softmaxCrossEntropy } from '../../../src/index.js';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import { record } from '../../../src/native/step-graph/capture.js';
import { buildStepGraph } from '../../../src/native/step-graph/build.js';
import { STEP_GRAPH_KERNELS, TRANSLATIONS } from '../../../src/native/step-graph/translate.js';
import {
  CONV_TRANSLATIONS,
  GENERAL_MAX_POOL_GRAD,
  nchwcBlockSize,
} from '../../../src/native/step-graph/translate-conv.js';
import { createStepGraphProvider } from '../../../src/native/step-graph/enable.js';
import { installStepGraphProvider } from '../../../src/native/step-graph/hook.js';
import { MAX_POOL_GRAD_TRANSPOSE } from '../../../src/kernels/max-pool-grad.js';
import { onBackend } from '../../helpers.js';
import { runBuiltGraph } from './helpers.js';

const unavailable = onnxRuntimeUnavailableReason();
if (unavailable !== '') console.log(`# step-graph conv test skipped: ${unavailable}`);

/**
 * `kernel` run once on the cpu backend (TF.js's kernel: the native kernels are off here) and
 * as a one-call step graph on the same inputs: both results.
 */
function kernelAndGraph(
  kernel: string,
  inputs: Record<string, tf.Tensor>,
  attrs: Record<string, unknown>,
): { want: Float32Array; got: Float32Array; shape: number[] } {
  const { result, recording, refOf } = record(
    () => tf.engine().runKernel(kernel, inputs, attrs as tf.NamedAttrMap) as tf.Tensor,
  );
  // Our Conv2DBackpropFilter runs BatchMatMul inside itself: recorded, then left out.
  assert.equal(recording.calls.at(-1)!.kernelName, kernel);
  const built = buildStepGraph(recording, [{ ref: refOf(result)!, shape: [...result.shape] }]);
  const got = runBuiltGraph(built, recording)[0]![0]!;
  const want = result.dataSync() as Float32Array;
  const shape = [...result.shape];
  result.dispose();
  return { want, got, shape };
}

/** The graph's values equal TF.js's to float32 rounding of sums of `terms` products. */
function assertAgrees(
  kernel: string,
  inputs: Record<string, tf.Tensor>,
  attrs: Record<string, unknown>,
  exact = false,
): void {
  const { want, got } = kernelAndGraph(kernel, inputs, attrs);
  let scale = 0;
  let err = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]!));
    err = Math.max(err, Math.abs(got[i]! - want[i]!));
  }
  const what = `${kernel} ${JSON.stringify(attrs)}`;
  assert.ok(scale > 0, `${what}: all zeros, a weak test`);
  if (exact) assert.equal(err, 0, `${what}: differs by ${err}`);
  else assert.ok(err <= 1e-5 * scale, `${what}: differs by ${err} against a scale of ${scale}`);
}

const normal = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);

/** Runs `body` with the tiling windows' MaxPoolGrad path (true) or the general one (false). */
function withMaxPoolGradPath(tiling: boolean, body: () => void): void {
  const table = TRANSLATIONS as Record<string, unknown>;
  const saved = { ...table };
  if (!tiling) Object.assign(table, GENERAL_MAX_POOL_GRAD);
  try {
    body();
  } finally {
    Object.assign(table, saved);
  }
}

/** Convolution geometries: x, filter, strides, pad, dilations. */
const CONVS: [number[], number[], number, 'same' | 'valid', number][] = [
  [[2, 9, 7, 3], [3, 3, 3, 4], 1, 'same', 1],
  [[2, 9, 7, 3], [3, 3, 3, 4], 2, 'same', 1],
  [[2, 8, 8, 3], [3, 3, 3, 4], 2, 'same', 1],
  [[2, 9, 7, 3], [3, 2, 3, 4], 2, 'valid', 1],
  [[2, 9, 8, 2], [1, 1, 2, 5], 2, 'valid', 1],
  [[1, 9, 9, 2], [3, 3, 2, 3], 1, 'same', 2],
  [[1, 11, 10, 2], [2, 3, 2, 3], 1, 'valid', 2],
];

describe(
  'step-graph translations of convolutions and pooling (cpu)',
  { skip: unavailable || false },
  () => {
    before(async () => onBackend('cpu'));

    it('are all in the step-graph table', () => {
      for (const name of Object.keys(CONV_TRANSLATIONS)) {
        assert.ok(STEP_GRAPH_KERNELS.includes(name), name);
      }
    });

    it('Conv2D, FusedConv2D, Conv2DBackpropInput and Conv2DBackpropFilter agree with TF.js', () => {
      const before = tf.memory().numTensors;
      CONVS.forEach(([xShape, fShape, strides, pad, dilations], k) => {
        const x = normal(xShape, 10 + k);
        const filter = normal(fShape, 20 + k);
        const y = tf.conv2d(
          x as tf.Tensor4D,
          filter as tf.Tensor4D,
          strides,
          pad,
          'NHWC',
          dilations,
        );
        const dy = normal(y.shape, 30 + k);
        const bias = normal([fShape[3]!], 40 + k);
        const conv = { strides, pad, dataFormat: 'NHWC', dilations, dimRoundingMode: undefined };
        assertAgrees('Conv2D', { x, filter }, conv);
        for (const activation of ['linear', 'relu', 'leakyrelu']) {
          const fused = { ...conv, activation, leakyreluAlpha: 0.3 };
          assertAgrees('FusedConv2D', { x, filter, bias }, fused);
        }
        // prelu's weights are a third input, per output channel.
        const preluActivationWeights = normal([fShape[3]!], 45 + k);
        assertAgrees(
          'FusedConv2D',
          { x, filter, bias, preluActivationWeights },
          { ...conv, activation: 'prelu' },
        );
        preluActivationWeights.dispose();
        if (dilations === 1) {
          // TF.js's gradients take no dilation with strides > 1; its cpu kernels none at all.
          assertAgrees('Conv2DBackpropInput', { dy, filter }, { ...conv, inputShape: xShape });
          assertAgrees('Conv2DBackpropFilter', { x, dy }, { ...conv, filterShape: fShape });
        }
        tf.dispose([x, filter, y, dy, bias]);
      });
      assert.equal(tf.memory().numTensors, before);
    });

    it('Conv2D, FusedConv2D and Conv2DBackpropInput as NCHWc Convs agree with TF.js, and are taken where they fit', () => {
      const before = tf.memory().numTensors;
      const block = nchwcBlockSize();
      if (block === 0) console.log('# no NCHWc kernels in this ONNX Runtime: the plain path only');
      /** The nodes of the one-call graph of `kernel`. */
      const nodesOf = (kernel: string, inputs: Record<string, tf.Tensor>, attrs: object) => {
        const { result, recording, refOf } = record(
          () => tf.engine().runKernel(kernel, inputs, attrs as tf.NamedAttrMap) as tf.Tensor,
        );
        const built = buildStepGraph(recording, [
          { ref: refOf(result)!, shape: [...result.shape] },
        ]);
        result.dispose();
        return built.graph.nodes;
      };
      /** Whether the one-call graph of `kernel` has ONNX Runtime's NCHWc Conv. */
      const takesNchwc = (kernel: string, inputs: Record<string, tf.Tensor>, attrs: object) =>
        nodesOf(kernel, inputs, attrs).some((n) => n.opType === 'Conv' && n.domain != null);
      // x, filter, strides, pad; whether the backprop input fits (stride 1, whole blocks out).
      // 16 and 32 channels are whole blocks of 8 (AVX2) and of 16 (AVX-512); 3 is less than one.
      const geometries: [number[], number[], number, 'same' | 'valid', boolean][] = [
        [[2, 9, 7, 16], [3, 3, 16, 32], 1, 'same', true],
        [[2, 9, 7, 32], [3, 2, 32, 16], 1, 'valid', true],
        [[2, 9, 7, 16], [3, 3, 16, 32], 2, 'same', false],
        [[2, 8, 8, 32], [1, 1, 32, 16], 2, 'valid', false],
        [[2, 9, 8, 3], [3, 3, 3, 16], 1, 'same', false],
        [[2, 9, 8, 1], [3, 3, 1, 16], 1, 'same', false],
        [[2, 9, 8, 1], [3, 2, 1, 8], 2, 'valid', false],
      ];
      geometries.forEach(([xShape, fShape, strides, pad, backpropFits], k) => {
        const x = normal(xShape, 110 + k);
        const filter = normal(fShape, 120 + k);
        const y = tf.conv2d(x as tf.Tensor4D, filter as tf.Tensor4D, strides, pad);
        const dy = normal(y.shape, 130 + k);
        const conv = { strides, pad, dataFormat: 'NHWC', dilations: 1 };
        const backprop = { ...conv, inputShape: xShape };
        const bias = normal([fShape[3]!], 140 + k);
        assertAgrees('Conv2D', { x, filter }, conv);
        assertAgrees('Conv2DBackpropInput', { dy, filter }, backprop);
        const what = JSON.stringify(backprop);
        // The filter gradient's dy transposed once by NCHWc reorders (whole output blocks, at
        // least a block of input channels).
        const filterGrad = { ...conv, filterShape: fShape };
        assertAgrees('Conv2DBackpropFilter', { x, dy }, filterGrad);
        assert.equal(
          nodesOf('Conv2DBackpropFilter', { x, dy }, filterGrad).some(
            (n) => n.opType === 'ReorderOutput',
          ),
          block > 0 && xShape[3]! >= block,
          `Conv2DBackpropFilter ${what}`,
        );
        // One input channel: the taps as one patch matrix, one product (else one per tap).
        const products = nodesOf('Conv2DBackpropFilter', { x, dy }, filterGrad).filter(
          (n) => n.opType === 'MatMul',
        ).length;
        const taps = fShape[0]! * fShape[1]!;
        assert.equal(products, xShape[3] === 1 ? 1 : taps, `filter gradient products ${what}`);
        assert.equal(takesNchwc('Conv2D', { x, filter }, conv), block > 0, `Conv2D ${what}`);
        for (const activation of ['linear', 'relu', 'leakyrelu']) {
          const fused = { ...conv, activation, leakyreluAlpha: 0.3 };
          assertAgrees('FusedConv2D', { x, filter, bias }, fused);
          assert.equal(takesNchwc('FusedConv2D', { x, filter, bias }, fused), block > 0, what);
        }
        // prelu's weights are an input the NCHWc path does not take: the native graph.
        const preluActivationWeights = normal([fShape[3]!], 150 + k);
        const prelu = { x, filter, bias, preluActivationWeights };
        assertAgrees('FusedConv2D', prelu, { ...conv, activation: 'prelu' });
        assert.equal(takesNchwc('FusedConv2D', prelu, { ...conv, activation: 'prelu' }), false);
        tf.dispose([bias, preluActivationWeights]);
        assert.equal(
          takesNchwc('Conv2DBackpropInput', { dy, filter }, backprop),
          block > 0 && backpropFits,
          `Conv2DBackpropInput ${what}`,
        );
        tf.dispose([x, filter, y, dy]);
      });
      assert.equal(tf.memory().numTensors, before);
    });

    it('the depthwise convolution and its gradients agree with TF.js', () => {
      const before = tf.memory().numTensors;
      for (const [strides, pad] of [
        [1, 'same'],
        [2, 'same'],
        [2, 'valid'],
      ] as const) {
        const xShape = [2, 9, 7, 3];
        const fShape = [3, 3, 3, 2];
        const x = normal(xShape, 1);
        const filter = normal(fShape, 2);
        const y = tf.depthwiseConv2d(x as tf.Tensor4D, filter as tf.Tensor4D, strides, pad);
        const dy = normal(y.shape, 3);
        const conv = { strides, pad, dataFormat: 'NHWC', dilations: 1 };
        assertAgrees('DepthwiseConv2dNative', { x, filter }, conv);
        assertAgrees(
          'DepthwiseConv2dNativeBackpropInput',
          { dy, filter },
          { ...conv, inputShape: xShape },
        );
        assertAgrees(
          'DepthwiseConv2dNativeBackpropFilter',
          { x, dy },
          { ...conv, filterShape: fShape },
        );
        tf.dispose([x, filter, y, dy]);
      }
      assert.equal(tf.memory().numTensors, before);
    });

    it('MaxPool, MaxPoolGrad and its transpose agree with TF.js, ties and overlapping windows included', () => {
      const before = tf.memory().numTensors;
      // The first three tile their input (stride = filter, no padding; trailing rows and
      // columns in the third): both paths; the rest only take the general one.
      const pools: [number[], number, number, 'same' | 'valid'][] = [
        [[2, 8, 8, 3], 2, 2, 'valid'],
        [[2, 8, 6, 3], 2, 2, 'same'],
        [[2, 9, 7, 3], 2, 2, 'valid'],
        [[2, 9, 7, 3], 2, 2, 'same'],
        [[2, 9, 7, 3], 3, 2, 'same'],
        [[1, 7, 9, 2], 3, 1, 'valid'],
      ];
      pools.forEach(([shape, filterSize, strides, pad], k) => {
        // relu'd: a third of the windows' entries are zeros, so many windows tie; the first
        // zero must win, as in TF.js.
        const input = tf.tidy(() => tf.relu(tf.sub(normal(shape, 50 + k), 0.5)));
        const attrs = { filterSize, strides, pad };
        const output = tf.maxPool(input as tf.Tensor4D, filterSize, strides, pad);
        const dy = normal(output.shape, 60 + k);
        const dxBar = normal(shape, 70 + k);
        assertAgrees('MaxPool', { x: input }, attrs, true);
        // Overlapping windows add several dy at one input: float32 rounding, not exact.
        const exact = filterSize <= strides;
        for (const tiling of [true, false]) {
          withMaxPoolGradPath(tiling, () => {
            assertAgrees('MaxPoolGrad', { dy, input, output }, attrs, exact);
            assertAgrees(MAX_POOL_GRAD_TRANSPOSE, { dxBar, input, output }, attrs, true);
          });
        }
        tf.dispose([input, output, dy, dxBar]);
      });
      assert.equal(tf.memory().numTensors, before);
    });

    it('MaxPoolGrad and its transpose give nothing to a window without a winner (all -Infinity or NaN)', () => {
      const values = Array.from({ length: 16 }, (_, i) => i - 5);
      values[0] = values[1] = values[4] = values[5] = -Infinity; // the first 2x2 window
      values[2] = values[3] = values[6] = values[7] = NaN; // the second
      values[8] = NaN; // first in the third window, which 8 wins
      const input = tf.tensor4d(values, [1, 4, 4, 1]);
      // Tiling windows on both paths, and overlapping ones (the general path).
      for (const [strides, tiling] of [
        [2, true],
        [2, false],
        [1, true],
      ] as const) {
        const attrs = { filterSize: 2, strides, pad: 'valid' };
        const output = tf.maxPool(input, 2, strides, 'valid');
        const dy = tf.tidy(() => tf.add(tf.range(0, output.size).reshape(output.shape), 1));
        const dxBar = tf.tidy(() => tf.add(tf.range(0, 16).reshape([1, 4, 4, 1]), 1));
        withMaxPoolGradPath(tiling, () => {
          const grad = kernelAndGraph('MaxPoolGrad', { dy, input, output }, attrs);
          assert.deepEqual(Array.from(grad.got), Array.from(grad.want), `strides ${strides}`);
          assert.equal(grad.want[0], 0);
          const transposed = kernelAndGraph(
            MAX_POOL_GRAD_TRANSPOSE,
            { dxBar, input, output },
            attrs,
          );
          assert.deepEqual(Array.from(transposed.got), Array.from(transposed.want));
          assert.equal(transposed.want[0], 0);
        });
        tf.dispose([output, dy, dxBar]);
      }
      input.dispose();
    });

    it('AvgPool and AvgPoolGrad agree with TF.js', () => {
      const before = tf.memory().numTensors;
      for (const [filterSize, strides, pad] of [
        [2, 2, 'valid'],
        [3, 2, 'same'],
        [3, 1, 'same'],
      ] as const) {
        const input = normal([2, 9, 7, 3], 80);
        const attrs = { filterSize, strides, pad };
        const output = tf.avgPool(input as tf.Tensor4D, filterSize, strides, pad);
        const dy = normal(output.shape, 81);
        assertAgrees('AvgPool', { x: input }, attrs);
        assertAgrees('AvgPoolGrad', { dy, input }, attrs);
        tf.dispose([input, output, dy]);
      }
      assert.equal(tf.memory().numTensors, before);
    });

    it('trains the small CNN with AdaHessian to the op-by-op weights, its steps replayed', () => {
      const build = () => buildSmallCnn({ seed: 2, inputShape: [12, 10, 1], classes: 5 });
      const trainable = (m: tf.Sequential) =>
        m.trainableWeights.map((w) => w.read() as tf.Variable);
      const a = build();
      const b = build();
      const optA = adahessian({ seed: 5, learningRate: 0.002 });
      const optB = adahessian({ seed: 5, learningRate: 0.002 });
      const reasons: string[] = [];
      const graphs = createStepGraphProvider({ debug: (r) => reasons.push(r) });
      const initial = trainable(a).map((v) => v.dataSync().slice());
      const tensorsBefore = tf.memory().numTensors;
      for (let s = 0; s < 5; s++) {
        const x = normal([6, 12, 10, 1], 300 + s);
        const y = tf.tidy(() => tf.oneHot(tf.randomUniform([6], 0, 5, 'int32', 400 + s), 5));
        const loss = (m: tf.Sequential) => () =>
          softmaxCrossEntropy(y, m.apply(x) as tf.Tensor) as tf.Scalar;
        const lossA = optA.minimize(loss(a), true, trainable(a))!;
        const uninstall = installStepGraphProvider(graphs.provider);
        let lossB: tf.Scalar;
        try {
          lossB = optB.minimize(loss(b), true, trainable(b))!;
        } finally {
          uninstall();
        }
        const [la, lb] = [lossA.dataSync()[0]!, lossB.dataSync()[0]!];
        // Rounding, magnified by AdaHessian's division by small diagonal entries: up to 6e-5.
        assert.ok(Math.abs(la - lb) <= 5e-4 * Math.abs(la), `step ${s}: loss ${lb} against ${la}`);
        tf.dispose([x, y, lossA, lossB]);
      }
      // Two captures (the second confirms the graph), then three replays.
      assert.equal(graphs.status().replays, 3, reasons.join('\n'));
      trainable(a).forEach((v, i) => {
        const x = v.dataSync();
        const y = trainable(b)[i]!.dataSync();
        let err = 0;
        let moved = 0;
        for (let k = 0; k < x.length; k++) {
          err = Math.max(err, Math.abs(x[k]! - y[k]!));
          moved = Math.max(moved, Math.abs(x[k]! - initial[i]![k]!));
        }
        // As the transformer's test: AdaHessian's division by small diagonal entries magnifies
        // rounding; a wrong translation differs by the size of a step.
        assert.ok(moved > 0, `${v.name} did not move`);
        assert.ok(
          err < 5e-3 * moved || err < 1e-6,
          `${v.name}: weights differ by ${err}, moved ${moved}`,
        );
      });
      // The optimizers' own state (moments) was made during the steps; the rest is gone.
      optA.dispose();
      optB.dispose();
      for (const s of graphs.all) s.dispose();
      assert.ok(tf.memory().numTensors <= tensorsBefore, 'tensors leaked');
      a.dispose();
      b.dispose();
    });
  },
);
