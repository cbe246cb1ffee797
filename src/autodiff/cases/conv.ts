/**
 * Coverage cases for convolutions and pooling: the ops (group 'conv'), the tf.layers that
 * use them ('layers') and the project's small CNN ('models'). Each is a tiny seeded problem
 * (2 images, at most 8x8 except the CNN) with a smooth head such as sum(sin(out)), so that
 * the Hessian is not zero even where the op is linear or piecewise linear. Variables are
 * the input image as well as the weights wherever both make sense, to exercise every
 * second-order path through the backprop kernels.
 */
import * as tf from '@tensorflow/tfjs';
import { buildSmallCnn } from '../../models/small-cnn.js';
import { problem, seeded } from './basic.js';
import type { SecondOrderCase, SecondOrderProblem } from './types.js';

function variable(shape: number[], seed: number, scale = 1, offset = 0): tf.Variable {
  const init = tf.tidy(() => tf.add(seeded(shape, seed, scale), offset));
  const v = tf.variable(init);
  init.dispose();
  return v;
}

function sinHead(t: tf.Tensor): tf.Scalar {
  return tf.sum(tf.sin(t)) as tf.Scalar;
}

type T4 = tf.Tensor4D;

/** A case whose variables are an input image x and a filter f, with loss head(op(x, f)). */
function convCase(
  name: string,
  xShape: number[],
  fShape: number[],
  op: (x: T4, f: T4) => tf.Tensor,
  seed: number,
  options: { skipBackends?: string[]; fScale?: number; xOffset?: number } = {},
): SecondOrderCase {
  return {
    name,
    group: 'conv',
    skipBackends: options.skipBackends,
    build() {
      const x = variable(xShape, seed, 1, options.xOffset);
      const f = variable(fShape, seed + 1, options.fScale ?? 0.4);
      return problem([x, f], [], () => sinHead(op(x as unknown as T4, f as unknown as T4)));
    },
  };
}

/**
 * conv2d (same, 3x3, 2 -> 3 channels) then a pooling op, with x and the filter as variables.
 * `xOffset` shifts the image off zero mean: global averages of a zero-mean image are tiny,
 * and so would be the curvature that finite differences must resolve in float32.
 */
function poolCase(
  name: string,
  pool: (t: T4) => tf.Tensor,
  seed: number,
  xOffset = 0,
): SecondOrderCase {
  return convCase(
    name,
    [2, 8, 8, 2],
    [3, 3, 2, 3],
    (x, f) => pool(tf.conv2d(x, f, 1, 'same')),
    seed,
    { xOffset },
  );
}

/**
 * A problem over the trainable weights of `model` (seeded initializers, so the same on every
 * backend), with loss head(model.apply(x, {training: true})).
 */
function modelProblem(
  model: tf.LayersModel,
  consts: tf.Tensor[],
  lossFn: (apply: (x: tf.Tensor) => tf.Tensor) => tf.Tensor,
): SecondOrderProblem {
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  return {
    vars,
    lossFn: () => lossFn((x) => model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
    dispose: () => {
      model.dispose();
      tf.dispose(consts);
    },
  };
}

/** Seeded initializers for a layer's kernel(s) and bias (the bias not zero, to matter). */
function init(seed: number, stddev = 0.4) {
  return {
    kernelInitializer: tf.initializers.randomNormal({ stddev, seed }),
    biasInitializer: tf.initializers.randomNormal({ stddev: 0.2, seed: seed + 1 }),
  };
}

/** A tf.sequential of `layers` on a [2, 8, 8, 2] seeded input, sin head. */
function layersCase(
  name: string,
  makeLayers: () => tf.layers.Layer[],
  seed: number,
  options: { inputShape?: [number, number, number]; xOffset?: number } = {},
): SecondOrderCase {
  const { inputShape = [8, 8, 2], xOffset = 0 } = options;
  return {
    name,
    group: 'layers',
    build() {
      const model = tf.sequential({ layers: makeLayers() });
      const x = tf.tidy(() => tf.add(seeded([2, ...inputShape], seed), xOffset));
      return modelProblem(model, [x], (apply) => sinHead(apply(x)));
    },
  };
}

/** mean over examples of -sum(labels * logSoftmax(logits)), logSoftmax via logSumExp. */
function softmaxCrossEntropy(labels: tf.Tensor, logits: tf.Tensor): tf.Scalar {
  const logProbs = tf.sub(logits, tf.logSumExp(logits, -1, true));
  return tf.mean(tf.neg(tf.sum(tf.mul(labels, logProbs), -1))) as tf.Scalar;
}

const opCases: SecondOrderCase[] = [
  convCase(
    'conv2d valid (input and filter)',
    [2, 6, 6, 3],
    [3, 3, 3, 4],
    (x, f) => tf.conv2d(x, f, 1, 'valid'),
    10,
  ),
  convCase('conv2d same', [2, 5, 5, 2], [3, 3, 2, 3], (x, f) => tf.conv2d(x, f, 1, 'same'), 20),
  convCase(
    'conv2d same, strides 2',
    [2, 7, 7, 2],
    [3, 3, 2, 3],
    (x, f) => tf.conv2d(x, f, 2, 'same'),
    30,
  ),
  convCase(
    'conv2d valid, strides 2',
    [2, 8, 8, 2],
    [3, 3, 2, 3],
    (x, f) => tf.conv2d(x, f, 2, 'valid'),
    35,
  ),
  convCase(
    'conv2d same, dilations 2',
    [2, 8, 8, 2],
    [3, 3, 2, 3],
    (x, f) => tf.conv2d(x, f, 1, 'same', 'NHWC', 2),
    40,
  ),
  {
    name: 'conv2d + bias (input, filter, bias)',
    group: 'conv',
    build() {
      const x = variable([2, 6, 6, 2], 50);
      const f = variable([3, 3, 2, 3], 51, 0.4);
      const b = variable([3], 52, 0.3);
      return problem([x, f, b], [], () =>
        sinHead(tf.add(tf.conv2d(x as unknown as T4, f as unknown as T4, 1, 'same'), b)),
      );
    },
  },
  ...(['linear', 'relu'] as const).map((activation, i): SecondOrderCase => ({
    name: `tf.fused.conv2d, bias, ${activation} (input, filter, bias)`,
    group: 'conv',
    build() {
      const x = variable([2, 6, 6, 2], 60 + 10 * i);
      const f = variable([3, 3, 2, 3], 61 + 10 * i, 0.4);
      const b = variable([3], 62 + 10 * i, 0.3);
      return problem([x, f, b], [], () =>
        sinHead(
          tf.fused.conv2d({
            x: x as unknown as T4,
            filter: f as unknown as T4,
            strides: 1,
            pad: 'same',
            bias: b,
            activation,
          }),
        ),
      );
    },
  })),
  convCase(
    'depthwiseConv2d same, channel multiplier 2 (input and filter)',
    [2, 6, 6, 2],
    [3, 3, 2, 2],
    (x, f) => tf.depthwiseConv2d(x, f, 1, 'same'),
    80,
  ),
  convCase(
    'depthwiseConv2d valid, strides 2',
    [2, 7, 7, 3],
    [3, 3, 3, 1],
    (x, f) => tf.depthwiseConv2d(x, f, 2, 'valid'),
    85,
  ),
  {
    name: 'separableConv2d (input, depthwise and pointwise filters)',
    group: 'conv',
    build() {
      const x = variable([2, 6, 6, 2], 90);
      const dw = variable([3, 3, 2, 2], 91, 0.4);
      const pw = variable([1, 1, 4, 3], 92, 0.4);
      return problem([x, dw, pw], [], () =>
        sinHead(
          tf.separableConv2d(
            x as unknown as T4,
            dw as unknown as T4,
            pw as unknown as T4,
            1,
            'same',
          ),
        ),
      );
    },
  },
  convCase(
    'conv2dTranspose same, strides 2 (input and filter)',
    [2, 3, 3, 3],
    [3, 3, 2, 3],
    (x, f) => tf.conv2dTranspose(x, f, [2, 6, 6, 2], 2, 'same'),
    100,
  ),
  poolCase('maxPool 2x2 stride 2 after conv2d', (t) => tf.maxPool(t, 2, 2, 'valid'), 110),
  poolCase(
    'maxPool 3x3 stride 2 same (overlapping windows) after conv2d',
    (t) => tf.maxPool(t, 3, 2, 'same'),
    120,
  ),
  poolCase('avgPool 2x2 stride 2 after conv2d', (t) => tf.avgPool(t, 2, 2, 'valid'), 130),
  poolCase(
    'avgPool 3x3 stride 2 same (padded, overlapping windows) after conv2d',
    (t) => tf.avgPool(t, 3, 2, 'same'),
    140,
  ),
  poolCase(
    'global average pooling (mean over H, W) after conv2d',
    (t) => tf.mean(t, [1, 2]),
    150,
    1,
  ),
];

const layerCases: SecondOrderCase[] = [
  layersCase(
    'tf.layers.conv2d, relu',
    () => [
      tf.layers.conv2d({
        filters: 3,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        inputShape: [8, 8, 2],
        ...init(200),
      }),
    ],
    201,
  ),
  layersCase(
    'tf.layers.depthwiseConv2d',
    () => [
      tf.layers.depthwiseConv2d({
        kernelSize: 3,
        depthMultiplier: 2,
        padding: 'same',
        inputShape: [8, 8, 2],
        depthwiseInitializer: tf.initializers.randomNormal({ stddev: 0.4, seed: 210 }),
        biasInitializer: tf.initializers.randomNormal({ stddev: 0.2, seed: 211 }),
      }),
    ],
    212,
  ),
  layersCase(
    'tf.layers.separableConv2d',
    () => [
      tf.layers.separableConv2d({
        filters: 3,
        kernelSize: 3,
        padding: 'same',
        inputShape: [8, 8, 2],
        depthwiseInitializer: tf.initializers.randomNormal({ stddev: 0.4, seed: 220 }),
        pointwiseInitializer: tf.initializers.randomNormal({ stddev: 0.4, seed: 221 }),
        biasInitializer: tf.initializers.randomNormal({ stddev: 0.2, seed: 222 }),
      }),
    ],
    223,
  ),
  layersCase(
    'tf.layers.conv2dTranspose, strides 2',
    () => [
      tf.layers.conv2dTranspose({
        filters: 2,
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        inputShape: [4, 4, 3],
        ...init(230),
      }),
    ],
    231,
    { inputShape: [4, 4, 3] },
  ),
  layersCase(
    'tf.layers.maxPooling2d after conv2d',
    () => [poolInputConv(240), tf.layers.maxPooling2d({ poolSize: 2 })],
    241,
  ),
  layersCase(
    'tf.layers.averagePooling2d after conv2d',
    () => [poolInputConv(250), tf.layers.averagePooling2d({ poolSize: 2 })],
    251,
  ),
  layersCase(
    'tf.layers.globalAveragePooling2d after conv2d',
    () => [poolInputConv(260), tf.layers.globalAveragePooling2d({})],
    261,
    { xOffset: 1 },
  ),
];

const modelCases: SecondOrderCase[] = [
  {
    name: 'small CNN (28x28x1, 2 images), softmax cross-entropy via logSumExp',
    group: 'models',
    build() {
      const model = buildSmallCnn({ seed: 7 });
      const x = seeded([2, 28, 28, 1], 300);
      const labels = tf.tidy(() => tf.oneHot(tf.tensor1d([3, 8], 'int32'), 10).toFloat());
      return modelProblem(model, [x, labels], (apply) => softmaxCrossEntropy(labels, apply(x)));
    },
  },
];

/** The 3x3 'same' conv on 8x8x2 inputs that feeds the pooling layers' cases. */
function poolInputConv(seed: number): tf.layers.Layer {
  return tf.layers.conv2d({
    filters: 3,
    kernelSize: 3,
    padding: 'same',
    inputShape: [8, 8, 2],
    ...init(seed),
  });
}

export const convCases: SecondOrderCase[] = [...opCases, ...layerCases, ...modelCases];
