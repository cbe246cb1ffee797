/**
 * A small decoder-only character-level transformer language model (GPT style, pre-LN):
 *
 *   ids [batch, T] -> token embedding + learned position embedding
 *   -> layers x { x + CausalSelfAttention(LN(x));  x + Dense(d)(gelu(Dense(ffDim)(LN(x)))) }
 *   -> LN -> Dense(vocabSize) logits [batch, T, vocabSize]
 *
 * Logits at position t depend on ids 0..t only, and predict the id at t + 1. GELU is the
 * exact (erf) form of tf.layers' 'gelu'. No dropout: the model is for small, reproducible runs.
 *
 * Training with model.compile / model.fit: targets are one-hot [batch, T, vocabSize] (e.g.
 * charTensors(dataset, { oneHot: true }).y, the inputs shifted by one) and the loss is
 * softmaxCrossEntropy from src/losses.ts, which sums over the last (class) axis and averages
 * over every other axis, i.e. over the batch * T positions: the same value as the
 * cross-entropy of the logits flattened to [batch * T, vocabSize]. tf.layers needs targets of
 * the output's shape for a custom loss, hence one-hot rather than ids. Inputs are int32 ids.
 *
 * The layer norms and the GELU layers are tf.layers' with compact gradients
 * (src/models/compact-gradient-layers.ts: one tape node each, whose gradient is the total
 * derivative), which make a gradient and its second-order sweep several times fewer ops; they
 * save as the stock 'LayerNormalization' and 'Dense'. `compactGradients: false` builds the
 * stock layers (the same weights for a seed; values equal to float32 rounding), for comparison.
 */
import * as tf from '@tensorflow/tfjs';
import { CausalSelfAttention } from './causal-self-attention.js';
import { CompactGradientDense, CompactLayerNormalization } from './compact-gradient-layers.js';
import { PositionEmbedding } from './position-embedding.js';
import { SeededInitializers } from './seeded-initializers.js';
import { checkPositiveInteger } from './validate.js';

export interface CharTransformerOptions {
  /** Number of distinct characters (ids 0..vocabSize-1); also the number of logits. */
  vocabSize: number;
  /** Sequence length T the model reads (its position table has T rows). */
  contextLength: number;
  /** Width of the residual stream (default 64). */
  dModel?: number;
  /** Attention heads per layer; must divide dModel (default 2). */
  heads?: number;
  /** Transformer blocks (default 2). */
  layers?: number;
  /** Hidden width of each block's MLP (default 128). */
  ffDim?: number;
  /** Makes the initial weights reproducible bit for bit; omit for fresh random weights. */
  seed?: number;
  /**
   * Layer norms and GELU layers with compact gradients (default true); false builds tf.layers'
   * stock ones, for comparison.
   */
  compactGradients?: boolean;
}

/** Builds an uncompiled character transformer that outputs logits [batch, T, vocabSize]. */
export function buildCharTransformer(options: CharTransformerOptions): tf.LayersModel {
  if (options == null || typeof options !== 'object') {
    throw new Error(`char-transformer: options with 'vocabSize' and 'contextLength' are required.`);
  }
  const { vocabSize, contextLength } = options;
  const dModel = options.dModel ?? 64;
  const heads = options.heads ?? 2;
  const layers = options.layers ?? 2;
  const ffDim = options.ffDim ?? 128;
  for (const [name, value] of Object.entries({
    vocabSize,
    contextLength,
    dModel,
    heads,
    layers,
    ffDim,
  })) {
    if (value === undefined) throw new Error(`char-transformer: option '${name}' is required.`);
    checkPositiveInteger('char-transformer', name, value);
  }
  if (dModel % heads !== 0) {
    throw new Error(
      `char-transformer: option 'heads' (${heads}) must divide option 'dModel' (${dModel}).`,
    );
  }
  const init = new SeededInitializers(options.seed);
  /** The seed SeededInitializers gives the next layer, for the custom layers' own initialisers. */
  const nextSeed = () => (init.glorotUniform().getConfig()['seed'] as number | undefined) ?? null;

  const compact = options.compactGradients ?? true;
  if (typeof compact !== 'boolean') {
    throw new Error(
      `char-transformer: option 'compactGradients' must be true or false, got ${String(compact)}.`,
    );
  }
  const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) =>
    layer.apply(x) as tf.SymbolicTensor;
  const layerNorm = (x: tf.SymbolicTensor, name: string) =>
    apply(
      compact
        ? new CompactLayerNormalization({ axis: -1, name })
        : tf.layers.layerNormalization({ axis: -1, name }),
      x,
    );
  const dense = (args: Parameters<typeof tf.layers.dense>[0]) =>
    compact ? new CompactGradientDense(args) : tf.layers.dense(args);

  const ids = tf.input({ shape: [contextLength], dtype: 'int32', name: 'ids' });
  const tokens = apply(
    tf.layers.embedding({
      inputDim: vocabSize,
      outputDim: dModel,
      embeddingsInitializer: init.glorotUniform(),
      name: 'token_embedding',
    }),
    ids,
  );
  let x = apply(new PositionEmbedding({ seed: nextSeed(), name: 'position_embedding' }), tokens);
  for (let i = 1; i <= layers; i++) {
    const name = `block${i}`;
    const attention = apply(
      new CausalSelfAttention({ heads, seed: nextSeed(), name: `${name}_attention` }),
      layerNorm(x, `${name}_ln1`),
    );
    x = apply(tf.layers.add({ name: `${name}_add1` }), [x, attention]);
    const hidden = apply(
      dense({
        units: ffDim,
        activation: 'gelu',
        kernelInitializer: init.heNormal(),
        name: `${name}_mlp_hidden`,
      }),
      layerNorm(x, `${name}_ln2`),
    );
    const mlp = apply(
      tf.layers.dense({
        units: dModel,
        kernelInitializer: init.glorotUniform(),
        name: `${name}_mlp_out`,
      }),
      hidden,
    );
    x = apply(tf.layers.add({ name: `${name}_add2` }), [x, mlp]);
  }
  const logits = apply(
    tf.layers.dense({ units: vocabSize, kernelInitializer: init.glorotUniform(), name: 'logits' }),
    layerNorm(x, 'final_ln'),
  );
  return tf.model({ inputs: ids, outputs: logits, name: 'char_transformer' });
}
