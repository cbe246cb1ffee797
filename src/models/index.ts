/** The model zoo: small, seeded, uncompiled tf.Sequential models that output logits. */
import type * as tf from '@tensorflow/tfjs';
import { buildMlp, type MlpOptions } from './mlp.js';
import { buildSmallCnn, type SmallCnnOptions } from './small-cnn.js';

export { buildMlp, type MlpOptions } from './mlp.js';
export { buildSmallCnn, type SmallCnnOptions } from './small-cnn.js';

export const MODEL_NAMES = ['mlp', 'small-cnn'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

/** Options understood by every model: the union of the builders' options. */
export type ModelOptions = MlpOptions &
  Omit<SmallCnnOptions, 'inputShape'> & {
    inputShape?: number[];
  };

/** Builds a zoo model by name (as the CLI spells it); throws for unknown names, listing the known ones. */
export function modelByName(name: string, options: ModelOptions = {}): tf.Sequential {
  switch (name as ModelName) {
    case 'mlp':
      return buildMlp(options);
    case 'small-cnn': {
      const { inputShape, classes, seed } = options;
      if (options.hidden !== undefined) {
        throw new Error(`small-cnn: option 'hidden' applies only to 'mlp'.`);
      }
      return buildSmallCnn({
        inputShape: inputShape as [number, number, number] | undefined,
        classes,
        seed,
      });
    }
    default:
      throw new Error(`Unknown model '${name}'; expected one of: ${MODEL_NAMES.join(', ')}.`);
  }
}
