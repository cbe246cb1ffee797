/** The model zoo: small, seeded, uncompiled tf.layers models that output logits. */
import type * as tf from '@tensorflow/tfjs';
import { buildCharTransformer, type CharTransformerOptions } from './char-transformer.js';
import { buildMlp, type MlpOptions } from './mlp.js';
import { buildResNet20, type ResNet20Options } from './resnet20.js';
import { buildSmallCnn, type SmallCnnOptions } from './small-cnn.js';

export { buildMlp, type MlpOptions } from './mlp.js';
export { buildSmallCnn, type SmallCnnOptions } from './small-cnn.js';
export { buildResNet20, type ResNet20Options } from './resnet20.js';
export { buildCharTransformer, type CharTransformerOptions } from './char-transformer.js';
export { CausalSelfAttention, type CausalSelfAttentionArgs } from './causal-self-attention.js';
export { PositionEmbedding, type PositionEmbeddingArgs } from './position-embedding.js';
export { ZeroPadShortcut, type ZeroPadShortcutArgs } from './zero-pad-shortcut.js';
// tf.layers' LayerNormalization (last axis) and Dense 'gelu' with compact first and second
// derivatives; they save as the stock classes. The char transformer uses them.
export { CompactGradientDense, CompactLayerNormalization } from './compact-gradient-layers.js';
// tf.layers' BatchNormalization with a compact training-mode gradient; ResNet-20 uses it.
export { ResNetBatchNormalization } from './resnet-batch-norm.js';

export const MODEL_NAMES = ['mlp', 'small-cnn', 'resnet20', 'char-transformer'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

/** Options understood by every model: the union of the builders' options. */
export type ModelOptions = MlpOptions &
  Omit<SmallCnnOptions, 'inputShape'> &
  Omit<ResNet20Options, 'inputShape'> &
  Partial<CharTransformerOptions> & {
    inputShape?: number[];
  };

/** Which models each option applies to ('seed' applies to all). */
const OPTION_MODELS: Record<Exclude<keyof ModelOptions, 'seed'>, readonly ModelName[]> = {
  inputShape: ['mlp', 'small-cnn', 'resnet20'],
  // For 'char-transformer' only as a check: the logits are its vocabulary.
  classes: ['mlp', 'small-cnn', 'resnet20', 'char-transformer'],
  hidden: ['mlp'],
  width: ['resnet20'],
  blocksPerStage: ['resnet20'],
  vocabSize: ['char-transformer'],
  contextLength: ['char-transformer'],
  dModel: ['char-transformer'],
  heads: ['char-transformer'],
  layers: ['char-transformer'],
  ffDim: ['char-transformer'],
  compactGradients: ['char-transformer'],
};

/**
 * Builds a zoo model by name (as the CLI spells it); throws for unknown names, listing the
 * known ones, and for options given that the model does not use, naming the ones that do.
 * 'char-transformer' needs vocabSize and contextLength.
 */
export function modelByName(name: string, options: ModelOptions = {}): tf.LayersModel {
  if (!(MODEL_NAMES as readonly string[]).includes(name)) {
    throw new Error(`Unknown model '${name}'; expected one of: ${MODEL_NAMES.join(', ')}.`);
  }
  const model = name as ModelName;
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined || key === 'seed') continue;
    const users = OPTION_MODELS[key as keyof typeof OPTION_MODELS] as
      readonly ModelName[] | undefined;
    if (users == null) {
      throw new Error(`${model}: unknown option '${key}'.`);
    }
    if (!users.includes(model)) {
      throw new Error(
        `${model}: option '${key}' applies only to ${users.map((m) => `'${m}'`).join(', ')}.`,
      );
    }
  }
  const { inputShape, classes, seed } = options;
  switch (model) {
    case 'mlp':
      return buildMlp(options);
    case 'small-cnn':
      return buildSmallCnn({
        inputShape: inputShape as [number, number, number] | undefined,
        classes,
        seed,
      });
    case 'resnet20':
      return buildResNet20({
        inputShape: inputShape as [number, number, number] | undefined,
        classes,
        seed,
        width: options.width,
        blocksPerStage: options.blocksPerStage,
      });
    case 'char-transformer': {
      const { vocabSize, contextLength, dModel, heads, layers, ffDim, compactGradients } = options;
      if (vocabSize === undefined || contextLength === undefined) {
        throw new Error(
          `char-transformer: options 'vocabSize' and 'contextLength' are required, got ${vocabSize} and ${contextLength}.`,
        );
      }
      if (classes !== undefined && classes !== vocabSize) {
        throw new Error(
          `char-transformer: option 'classes' (${classes}) must equal 'vocabSize' (${vocabSize}): the logits are the vocabulary.`,
        );
      }
      return buildCharTransformer({
        vocabSize,
        contextLength,
        dModel,
        heads,
        layers,
        ffDim,
        seed,
        compactGradients,
      });
    }
  }
}
