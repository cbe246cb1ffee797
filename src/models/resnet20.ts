/**
 * The CIFAR-10 ResNet of He et al. 2016 ("Deep Residual Learning for Image Recognition",
 * section 4.2), 6n + 2 layers: conv3x3(w) + BN + relu, three stages of n basic blocks with
 * w, 2w and 4w channels (stride 2 at the start of stages 2 and 3), global average pooling,
 * dense logits. A basic block is conv3x3 + BN + relu + conv3x3 + BN, plus the shortcut,
 * then relu. With w = 16 and n = 3 it is ResNet-20 (0.27M parameters, about 91.3 % test
 * accuracy on CIFAR-10 in the paper).
 *
 * Shortcuts are the paper's option A, as it uses for CIFAR: the identity, and where a block
 * changes shape, the subsampled identity with zero channels appended (ZeroPadShortcut), so
 * shortcuts add no parameters. Convolutions have no bias (the batch norm after each has its
 * own offset). Batch norm uses momentum 0.9 (Torch's 0.1 the other way round, as the paper's
 * code), so its moving statistics settle within tens of steps.
 */
import * as tf from '@tensorflow/tfjs';
import { SeededInitializers } from './seeded-initializers.js';
import { checkPositiveInteger, checkShape } from './validate.js';
import { ResNetBatchNormalization } from './resnet-batch-norm.js';
import { ZeroPadShortcut } from './zero-pad-shortcut.js';

export interface ResNet20Options {
  /** [height, width, channels] of one example (default [32, 32, 3], CIFAR-10). */
  inputShape?: [number, number, number];
  /** Number of output logits (default 10). */
  classes?: number;
  /** Makes the initial weights reproducible bit for bit; omit for fresh random weights. */
  seed?: number;
  /** Channels of the first stage; the others have 2x and 4x (default 16). */
  width?: number;
  /** Basic blocks per stage, n in 6n + 2 (default 3: ResNet-20; 5 gives ResNet-32). */
  blocksPerStage?: number;
}

const BATCH_NORM = { axis: -1, momentum: 0.9, epsilon: 1e-3 } as const;

/** Builds an uncompiled CIFAR ResNet (ResNet-20 at the defaults) that outputs logits. */
export function buildResNet20(options: ResNet20Options = {}): tf.LayersModel {
  const inputShape = options.inputShape ?? [32, 32, 3];
  const classes = options.classes ?? 10;
  const width = options.width ?? 16;
  const blocksPerStage = options.blocksPerStage ?? 3;
  checkShape('resnet20', 'inputShape', inputShape);
  if (inputShape.length !== 3) {
    throw new Error(
      `resnet20: option 'inputShape' must be [height, width, channels], got ${JSON.stringify(inputShape)}.`,
    );
  }
  checkPositiveInteger('resnet20', 'classes', classes);
  checkPositiveInteger('resnet20', 'width', width);
  checkPositiveInteger('resnet20', 'blocksPerStage', blocksPerStage);
  const init = new SeededInitializers(options.seed);

  const conv = (x: tf.SymbolicTensor, filters: number, strides: number, name: string) =>
    tf.layers
      .conv2d({
        filters,
        kernelSize: 3,
        strides,
        padding: 'same',
        useBias: false,
        kernelInitializer: init.heNormal(),
        name,
      })
      .apply(x) as tf.SymbolicTensor;
  // The stock layer, with a faster training path and compact gradient (resnet-batch-norm.ts).
  const batchNorm = (x: tf.SymbolicTensor, name: string) =>
    new ResNetBatchNormalization({ ...BATCH_NORM, name }).apply(x) as tf.SymbolicTensor;
  const relu = (x: tf.SymbolicTensor, name: string) =>
    tf.layers.reLU({ name }).apply(x) as tf.SymbolicTensor;

  const input = tf.input({ shape: inputShape, name: 'image' });
  let x = relu(batchNorm(conv(input, width, 1, 'stem_conv'), 'stem_bn'), 'stem_relu');
  let channels = width;
  for (let stage = 1; stage <= 3; stage++) {
    const filters = width * 2 ** (stage - 1);
    for (let block = 1; block <= blocksPerStage; block++) {
      const strides = stage > 1 && block === 1 ? 2 : 1;
      const name = `stage${stage}_block${block}`;
      let h = relu(
        batchNorm(conv(x, filters, strides, `${name}_conv1`), `${name}_bn1`),
        `${name}_relu1`,
      );
      h = batchNorm(conv(h, filters, 1, `${name}_conv2`), `${name}_bn2`);
      const shortcut =
        strides === 1 && filters === channels
          ? x
          : (new ZeroPadShortcut({ filters, strides, name: `${name}_shortcut` }).apply(
              x,
            ) as tf.SymbolicTensor);
      const sum = tf.layers.add({ name: `${name}_add` }).apply([h, shortcut]) as tf.SymbolicTensor;
      x = relu(sum, `${name}_relu2`);
      channels = filters;
    }
  }
  const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(x) as tf.SymbolicTensor;
  const logits = tf.layers
    .dense({ units: classes, kernelInitializer: init.glorotUniform(), name: 'logits' })
    .apply(pooled) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits, name: `resnet${6 * blocksPerStage + 2}` });
}
