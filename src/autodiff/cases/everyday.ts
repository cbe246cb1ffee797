/**
 * Coverage cases for the layers a user of the model zoo meets next (issue 13): conv3d,
 * resizing and upSampling2d, dilated convolutions through the fused ops that tf.layers uses,
 * causal conv1d, the noise layers at a fixed draw, and attention-style batched matMul with
 * transposes. Same conventions as cases/conv.ts: tiny seeded problems, a sin head.
 */
import * as tf from '@tensorflow/tfjs';
import { mulberry32 } from '../../util/mulberry32.js';
import { problem, seeded } from './basic.js';
import type { SecondOrderCase, SecondOrderProblem } from './types.js';

function variable(shape: number[], seed: number, scale = 1): tf.Variable {
  const init = seeded(shape, seed, scale);
  const v = tf.variable(init);
  init.dispose();
  return v;
}

function sinHead(t: tf.Tensor): tf.Scalar {
  return tf.sum(tf.sin(t)) as tf.Scalar;
}

type T4 = tf.Tensor4D;
type T5 = tf.Tensor5D;

/** Variables x (an input) and f (a filter), loss sin-head of op(x, f). */
function twoVariableCase(
  name: string,
  group: SecondOrderCase['group'],
  shapes: [number[], number[]],
  op: (x: tf.Tensor, f: tf.Tensor) => tf.Tensor,
  seed: number,
  fScale = 0.4,
): SecondOrderCase {
  return {
    name,
    group,
    build() {
      const x = variable(shapes[0], seed);
      const f = variable(shapes[1], seed + 1, fScale);
      return problem([x, f], [], () => sinHead(op(x, f)));
    },
  };
}

/** Seeded kernel and bias initializers (the bias non-zero, so that it matters). */
function init(seed: number, stddev = 0.4) {
  return {
    kernelInitializer: tf.initializers.randomNormal({ stddev, seed }),
    biasInitializer: tf.initializers.randomNormal({ stddev: 0.2, seed: seed + 1 }),
  };
}

/**
 * A problem over the trainable weights of tf.sequential(layers), loss sin-head of
 * model.apply(x, {training: true}); `around` wraps each evaluation (see noise below).
 */
function layersCase(
  name: string,
  makeLayers: () => tf.layers.Layer[],
  xShape: number[],
  seed: number,
  around: <T>(f: () => T) => T = (f) => f(),
): SecondOrderCase {
  return {
    name,
    group: 'layers',
    build(): SecondOrderProblem {
      const model = tf.sequential({ layers: makeLayers() });
      const x = seeded(xShape, seed);
      return {
        vars: model.trainableWeights.map((w) => w.read() as tf.Variable),
        lossFn: () => around(() => sinHead(model.apply(x, { training: true }) as tf.Tensor)),
        dispose: () => {
          model.dispose();
          x.dispose();
        },
      };
    },
  };
}

/**
 * Runs f with Math.random replaced by a generator seeded with `seed`, so that every call
 * draws the same noise. tf.layers.gaussianNoise and gaussianDropout take no seed and draw
 * with tf.randomNormal(shape) seeded from Math.random; a training step sees one draw, and
 * finite differences need that same draw at every point they evaluate.
 */
function withSeededMathRandom(seed: number): <T>(f: () => T) => T {
  return (f) => {
    const original = Math.random;
    Math.random = mulberry32(seed);
    try {
      return f();
    } finally {
      Math.random = original;
    }
  };
}

/** [2, 8, 2] -> conv1d with causal padding: (kernel - 1) * dilation zeros on the left. */
function causalConv1d(x: tf.Tensor, f: tf.Tensor, dilation: number): tf.Tensor {
  const left = (f.shape[0]! - 1) * dilation;
  const padded = tf.pad(x, [
    [0, 0],
    [left, 0],
    [0, 0],
  ]) as tf.Tensor3D;
  return tf.conv1d(padded, f as tf.Tensor3D, 1, 'valid', 'NWC', dilation);
}

/** A 3x3 'same' conv on small 2-channel images, the input of the resizing cases. */
function smallConv(x: tf.Tensor, f: tf.Tensor): T4 {
  return tf.conv2d(x as T4, f as T4, 1, 'same');
}

const conv3x3: [number[], number[]] = [
  [2, 4, 4, 2],
  [3, 3, 2, 2],
];

const opCases: SecondOrderCase[] = [
  twoVariableCase(
    'conv3d valid (input and filter)',
    'conv',
    [
      [2, 4, 4, 4, 2],
      [2, 2, 2, 2, 3],
    ],
    (x, f) => tf.conv3d(x as T5, f as T5, 1, 'valid'),
    600,
  ),
  twoVariableCase(
    'conv3d same, strides 2',
    'conv',
    [
      [2, 5, 5, 5, 2],
      [3, 3, 3, 2, 2],
    ],
    (x, f) => tf.conv3d(x as T5, f as T5, 2, 'same'),
    605,
    0.3,
  ),
  twoVariableCase(
    'conv3d same, dilations [2, 1, 2]',
    'conv',
    [
      [2, 5, 4, 5, 2],
      [2, 3, 2, 2, 2],
    ],
    (x, f) => tf.conv3d(x as T5, f as T5, 1, 'same', 'NDHWC', [2, 1, 2]),
    607,
  ),
  twoVariableCase(
    'resizeNearestNeighbor 4x4 -> 8x8 after conv2d',
    'conv',
    conv3x3,
    (x, f) => tf.image.resizeNearestNeighbor(smallConv(x, f), [8, 8]),
    610,
  ),
  twoVariableCase(
    'resizeNearestNeighbor 4x4 -> 7x5, alignCorners, after conv2d',
    'conv',
    conv3x3,
    (x, f) => tf.image.resizeNearestNeighbor(smallConv(x, f), [7, 5], true),
    615,
  ),
  twoVariableCase(
    'resizeNearestNeighbor 4x4 -> 6x3, halfPixelCenters, after conv2d',
    'conv',
    conv3x3,
    (x, f) => tf.image.resizeNearestNeighbor(smallConv(x, f), [6, 3], false, true),
    620,
  ),
  twoVariableCase(
    'resizeBilinear 4x4 -> 8x8 after conv2d',
    'conv',
    conv3x3,
    (x, f) => tf.image.resizeBilinear(smallConv(x, f), [8, 8]),
    625,
  ),
  twoVariableCase(
    'resizeBilinear 4x4 -> 7x5, alignCorners, after conv2d',
    'conv',
    conv3x3,
    (x, f) => tf.image.resizeBilinear(smallConv(x, f), [7, 5], true),
    630,
  ),
  twoVariableCase(
    'resizeBilinear 4x3 -> 6x5, halfPixelCenters, after conv2d',
    'conv',
    [
      [2, 4, 3, 2],
      [3, 3, 2, 2],
    ],
    (x, f) => tf.image.resizeBilinear(smallConv(x, f), [6, 5], false, true),
    635,
  ),
  twoVariableCase(
    'depthwiseConv2d same, dilations 2',
    'conv',
    [
      [2, 8, 8, 2],
      [3, 3, 2, 2],
    ],
    (x, f) => tf.depthwiseConv2d(x as T4, f as T4, 1, 'same', 'NHWC', 2),
    640,
  ),
  ...(['linear', 'relu'] as const).map((activation, i): SecondOrderCase => ({
    name: `tf.fused.conv2d dilations 2, bias, ${activation} (input, filter, bias)`,
    group: 'conv',
    build() {
      const x = variable([2, 8, 8, 2], 650 + 5 * i);
      const f = variable([3, 3, 2, 3], 651 + 5 * i, 0.4);
      const b = variable([3], 652 + 5 * i, 0.3);
      return problem([x, f, b], [], () =>
        sinHead(
          tf.fused.conv2d({
            x: x as unknown as T4,
            filter: f as unknown as T4,
            strides: 1,
            pad: 'same',
            dilations: 2,
            bias: b,
            activation,
          }),
        ),
      );
    },
  })),
  {
    name: 'tf.fused.depthwiseConv2d dilations [2, 3], bias, linear (input, filter, bias)',
    group: 'conv',
    build() {
      const x = variable([2, 8, 9, 2], 660);
      const f = variable([3, 3, 2, 2], 661, 0.4);
      const b = variable([4], 662, 0.3);
      return problem([x, f, b], [], () =>
        sinHead(
          tf.fused.depthwiseConv2d({
            x: x as unknown as T4,
            filter: f as unknown as T4,
            strides: 1,
            pad: 'same',
            dilations: [2, 3],
            bias: b,
          }),
        ),
      );
    },
  },
  twoVariableCase(
    'conv1d, causal padding, dilation 2 (left pad + conv1d)',
    'conv',
    [
      [2, 8, 2],
      [3, 2, 3],
    ],
    (x, f) => causalConv1d(x, f, 2),
    670,
  ),
];

const layerCases: SecondOrderCase[] = [
  layersCase(
    'tf.layers.conv3d',
    () => [tf.layers.conv3d({ filters: 2, kernelSize: 2, inputShape: [4, 4, 4, 2], ...init(700) })],
    [2, 4, 4, 4, 2],
    701,
  ),
  ...(['nearest', 'bilinear'] as const).map((interpolation, i) =>
    layersCase(
      `tf.layers.upSampling2d (${interpolation}) after conv2d`,
      () => [
        tf.layers.conv2d({
          filters: 2,
          kernelSize: 3,
          padding: 'same',
          inputShape: [4, 4, 2],
          ...init(710 + 5 * i),
        }),
        tf.layers.upSampling2d({ size: [2, 2], interpolation }),
      ],
      [2, 4, 4, 2],
      711 + 5 * i,
    ),
  ),
  // relu: tf.layers fuses it, and TF.js unfuses it under a gradient tape; tanh and linear:
  // the fused conv with a linear activation, whose stock gradient refuses dilations.
  ...(['relu', 'tanh', 'linear'] as const).map((activation, i) =>
    layersCase(
      `tf.layers.conv2d, dilationRate 2, ${activation}`,
      () => [
        tf.layers.conv2d({
          filters: 3,
          kernelSize: 3,
          padding: 'same',
          dilationRate: 2,
          activation,
          inputShape: [8, 8, 2],
          ...init(720 + 5 * i),
        }),
      ],
      [2, 8, 8, 2],
      721 + 5 * i,
    ),
  ),
  layersCase(
    'tf.layers.conv1d, dilationRate 2, tanh',
    () => [
      tf.layers.conv1d({
        filters: 3,
        kernelSize: 3,
        padding: 'same',
        dilationRate: 2,
        activation: 'tanh',
        inputShape: [8, 2],
        ...init(740),
      }),
    ],
    [2, 8, 2],
    741,
  ),
  layersCase(
    'tf.layers gaussianNoise (stddev 0.3, one fixed draw)',
    () => [
      tf.layers.dense({ units: 5, inputShape: [4], ...init(750) }),
      tf.layers.gaussianNoise({ stddev: 0.3 }),
      tf.layers.dense({ units: 3, activation: 'tanh', ...init(752) }),
    ],
    [6, 4],
    754,
    withSeededMathRandom(755),
  ),
  layersCase(
    'tf.layers gaussianDropout (rate 0.3, one fixed draw)',
    () => [
      tf.layers.dense({ units: 5, inputShape: [4], ...init(760) }),
      tf.layers.gaussianDropout({ rate: 0.3 }),
      tf.layers.dense({ units: 3, activation: 'tanh', ...init(762) }),
    ],
    [6, 4],
    764,
    withSeededMathRandom(765),
  ),
  layersCase(
    'tf.layers dropout (rate 0.5, seed 3) between tanh layers',
    () => [
      tf.layers.dense({ units: 6, inputShape: [4], activation: 'tanh', ...init(770) }),
      tf.layers.dropout({ rate: 0.5, seed: 3 }),
      tf.layers.dense({ units: 3, ...init(772) }),
    ],
    [6, 4],
    774,
  ),
];

/** Attention-style products: batched (rank 3 and 4) matMul with each transpose flag. */
const attentionCases: SecondOrderCase[] = [
  ...(
    [
      [false, true, [2, 2, 3, 4], [2, 2, 5, 4], 'Q K^T per head, rank 4'],
      [true, false, [2, 4, 3], [2, 4, 5], 'transposeA, rank 3'],
      [true, true, [2, 2, 4, 3], [2, 2, 5, 4], 'transposeA + transposeB, rank 4'],
    ] as const
  ).map(([transposeA, transposeB, aShape, bShape, label], i) =>
    twoVariableCase(
      `batched matMul, ${label} (both operands variables)`,
      'attention',
      [[...aShape], [...bShape]],
      (a, b) => tf.matMul(a, b, transposeA, transposeB),
      780 + 5 * i,
      0.7,
    ),
  ),
  {
    name: 'scaled dot-product attention softmax(Q K^T / 2) V, 2 heads, rank 4 (Q, K, V)',
    group: 'attention',
    build() {
      const q = variable([2, 2, 3, 4], 800, 0.7);
      const k = variable([2, 2, 5, 4], 801, 0.7);
      const v = variable([2, 2, 5, 4], 802, 0.7);
      return problem([q, k, v], [], () => {
        const weights = tf.softmax(tf.div(tf.matMul(q, k, false, true), 2));
        return sinHead(tf.matMul(weights, v));
      });
    },
  },
];

export const everydayCases: SecondOrderCase[] = [...opCases, ...layerCases, ...attentionCases];
