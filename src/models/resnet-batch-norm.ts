/**
 * tf.layers' batchNormalization, with its training-mode normalization (channels last, center
 * and scale on) done by batchNormTraining: the moments as native-friendly sums and one compact
 * gradient node instead of stock TF.js's Mean-based moments and FusedBatchNorm gradient (see
 * src/autodiff/gradients/batch-norm.ts). The same values to float32 rounding, the same weights,
 * moving-statistics update and config: it serializes as 'BatchNormalization', so a saved model
 * loads as the stock layer with tf.loadLayersModel (the CLI's loadModel builds this class).
 * Every other case (inference, other axes) is the stock code.
 */
import * as tf from '@tensorflow/tfjs';
import { batchNormTraining } from '../autodiff/gradients/batch-norm.js';

type LayerArgs = Parameters<typeof tf.layers.batchNormalization>[0];

/**
 * The stock class, which tf.layers does not export: from the serialization registry, not from
 * an instance (making one would use up an automatic layer name).
 */
const StockBatchNormalization = stockClass('BatchNormalization') as new (
  args?: LayerArgs,
) => tf.layers.Layer;

export function stockClass(className: string): unknown {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[className];
  if (entry == null) throw new Error(`tf.layers' ${className} is not registered; is tfjs loaded?`);
  return entry[0];
}

/** The stock layer's private state that the training path reads. */
interface BatchNormState {
  axis: number;
  momentum: number;
  epsilon: number;
  center: boolean;
  scale: boolean;
  gamma: tf.LayerVariable;
  beta: tf.LayerVariable;
  movingMean: tf.LayerVariable;
  movingVariance: tf.LayerVariable;
}

export class ResNetBatchNormalization extends StockBatchNormalization {
  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor {
    const input = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor;
    const state = this as unknown as BatchNormState;
    const channelsLast = state.axis === -1 || state.axis === input.rank - 1;
    if (kwargs['training'] !== true || !channelsLast || !state.center || !state.scale) {
      return super.call(inputs, kwargs) as tf.Tensor;
    }
    return tf.tidy(() => {
      const { normed, mean, variance } = batchNormTraining(
        input,
        state.gamma.read() as tf.Tensor1D,
        state.beta.read() as tf.Tensor1D,
        state.epsilon,
      );
      // The stock layer's update, op for op: moving -= (moving - batch) * (1 - momentum).
      for (const [moving, batch] of [
        [state.movingMean, mean],
        [state.movingVariance, variance],
      ] as const) {
        tf.tidy(() => {
          const original = moving.read();
          moving.write(tf.sub(original, tf.mul(tf.sub(original, batch), 1 - state.momentum)));
        });
      }
      return normed;
    });
  }
}
