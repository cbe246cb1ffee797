/**
 * A one-hidden-layer perceptron: flatten -> dense(hidden, relu) -> dense(classes) logits.
 * The baseline model for Fashion-MNIST (about 87-88 % test accuracy when trained).
 */
import * as tf from '@tensorflow/tfjs';
import { SeededInitializers } from './seeded-initializers.js';
import { checkPositiveInteger, checkShape } from './validate.js';

export interface MlpOptions {
  /** Shape of one example, without the batch axis (default [28, 28, 1]). */
  inputShape?: number[];
  /** Width of the hidden ReLU layer (default 256). */
  hidden?: number;
  /** Number of output logits (default 10). */
  classes?: number;
  /** Makes the initial weights reproducible bit for bit; omit for fresh random weights. */
  seed?: number;
}

/** Builds an uncompiled MLP that outputs logits (no softmax). */
export function buildMlp(options: MlpOptions = {}): tf.Sequential {
  const inputShape = options.inputShape ?? [28, 28, 1];
  const hidden = options.hidden ?? 256;
  const classes = options.classes ?? 10;
  checkShape('mlp', 'inputShape', inputShape);
  checkPositiveInteger('mlp', 'hidden', hidden);
  checkPositiveInteger('mlp', 'classes', classes);
  const init = new SeededInitializers(options.seed);

  const model = tf.sequential();
  // Flatten needs at least two feature axes; a vector input goes straight to the dense layer.
  const flat = inputShape.length === 1;
  if (!flat) model.add(tf.layers.flatten({ inputShape }));
  model.add(
    tf.layers.dense({
      units: hidden,
      activation: 'relu',
      kernelInitializer: init.heNormal(),
      ...(flat ? { inputShape } : {}),
    }),
  );
  model.add(tf.layers.dense({ units: classes, kernelInitializer: init.glorotUniform() }));
  return model;
}
