/**
 * Coverage cases for the model zoo's deeper models, built by their own builders at a tiny
 * size so every layer, custom layer and op they use is on the checked path:
 * - ResNet (buildResNet20 with width 4, one block per stage, 8x8x3 images): stride-2 convs,
 *   batch norm in training mode, the zero-padding shortcut (1x1 stride-2 average pool and
 *   channel pad), residual adds, relu, global average pooling, dense.
 * - character transformer (buildCharTransformer, dModel 8, 2 heads, 1 block, context 5,
 *   vocabulary 7): token and position embeddings, layer norm, causal multi-head attention
 *   (the custom layer: masked scores, softmax, batched matmuls), GELU MLP, dense logits.
 * Both with softmaxCrossEntropy over their logits, through model.apply(x, {training: true}).
 *
 * ReLU networks are piecewise quadratic in the weights (under this loss's smooth head), so a
 * finite-difference step that moves some ReLU input across zero compares H v with a
 * difference of gradients from two pieces, and fails although the product is right. The
 * ResNet's data seed (TINY_RESNET.dataSeed) is chosen so that no ReLU input changes sign at
 * any of the steps compareHvpWithFiniteDifferences takes along its default direction (of
 * seeds 1..16 only 4 does, on cpu and wasm alike; 0 would mean "unseeded" to TF.js); the test
 * test/models/resnet20.test.ts checks that this still holds, so a change that breaks it is
 * reported as such rather than as a wrong product.
 */
import * as tf from '@tensorflow/tfjs';
import { softmaxCrossEntropy } from '../../losses.js';
import { buildCharTransformer } from '../../models/char-transformer.js';
import { buildResNet20 } from '../../models/resnet20.js';
import { seeded } from './basic.js';
import { trainableVariables } from './nn.js';
import type { SecondOrderCase, SecondOrderProblem } from './types.js';

/** The tiny ResNet of the case: options, data seed and labels (exported for its test). */
export const TINY_RESNET = {
  options: {
    inputShape: [8, 8, 3] as [number, number, number],
    width: 4,
    blocksPerStage: 1,
    classes: 3,
    seed: 10, // layer seeds 11, 1011, ... (see SeededInitializers)
  },
  dataSeed: 4,
  labels: [2, 0],
};

/** The tiny transformer of the case: options, token ids [2, 5] and next-token labels. */
export const TINY_TRANSFORMER = {
  options: { vocabSize: 7, contextLength: 5, dModel: 8, heads: 2, layers: 1, ffDim: 16, seed: 5 },
  ids: [
    [1, 4, 4, 0, 6],
    [3, 2, 5, 1, 1],
  ],
  targets: [
    [4, 4, 0, 6, 2],
    [2, 5, 1, 1, 0],
  ],
};

/** Wasm lacks UnsortedSegmentSum (the embedding's gradient) until src/kernels registers one. */
function backendsLackingSegmentSum(): string[] {
  return tf.getKernel('UnsortedSegmentSum', 'wasm') == null ? ['wasm'] : [];
}

/** One-hot float32 rows along a new last axis, for labels of any nesting. */
function oneHot(labels: number[] | number[][], classes: number): tf.Tensor {
  return tf.tidy(() =>
    tf.cast(tf.oneHot(tf.tensor(labels, undefined, 'int32'), classes), 'float32'),
  );
}

/** Mean cross-entropy of model.apply(x, {training: true}) against one-hot `labels`. */
function modelProblem(model: tf.LayersModel, x: tf.Tensor, labels: tf.Tensor): SecondOrderProblem {
  return {
    vars: trainableVariables(model),
    lossFn: () => softmaxCrossEntropy(labels, model.apply(x, { training: true }) as tf.Tensor),
    dispose: () => {
      model.dispose();
      tf.dispose([x, labels]);
    },
  };
}

export const modelCases: SecondOrderCase[] = [
  {
    name: 'ResNet (option A shortcuts, batch norm; width 4, 1 block per stage, 8x8x3, 2 images)',
    group: 'models',
    build() {
      const { options, dataSeed, labels } = TINY_RESNET;
      const model = buildResNet20(options);
      const x = seeded([labels.length, ...options.inputShape], dataSeed);
      return modelProblem(model, x, oneHot(labels, options.classes));
    },
  },
  {
    name: 'character transformer (dModel 8, 2 heads, 1 block, context 5, vocabulary 7)',
    group: 'models',
    get skipBackends() {
      return backendsLackingSegmentSum();
    },
    build() {
      const { options, ids, targets } = TINY_TRANSFORMER;
      const model = buildCharTransformer(options);
      const x = tf.tensor2d(ids, undefined, 'int32');
      return modelProblem(model, x, oneHot(targets, options.vocabSize));
    },
  },
];
