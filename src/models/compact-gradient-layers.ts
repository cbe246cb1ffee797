/**
 * tf.layers' LayerNormalization (last axis) and Dense with the 'gelu' activation, with compact
 * gradients: layerNormLastAxis (src/autodiff/gradients/layer-norm.ts) and geluErf
 * (src/autodiff/gradients/gelu.ts) are each one tape node whose gradient is the total
 * derivative, a few full-size ops, so a gradient (and the second-order sweep that
 * differentiates it) runs a fraction of the ops stock TF.js's recorded gradients take.
 *
 * The same weights, config and values (layer norm to float32 rounding, GELU bit for bit): they
 * serialize under the stock class names ('LayerNormalization', 'Dense'), so a saved model loads
 * as the stock layers with tf.loadLayersModel (the CLI's loadModel, src/cli/model-io.ts, builds
 * these classes for those names instead). Every other case (other axes, no center or scale, other activations) is
 * the stock code.
 */
import * as tf from '@tensorflow/tfjs';
import { geluErf } from '../autodiff/gradients/gelu.js';
import { layerNormLastAxis } from '../autodiff/gradients/layer-norm.js';
import { stockClass } from './resnet-batch-norm.js';

type LayerNormArgs = Parameters<typeof tf.layers.layerNormalization>[0];
type DenseArgs = Parameters<typeof tf.layers.dense>[0];

const StockLayerNormalization = stockClass('LayerNormalization') as new (
  args?: LayerNormArgs,
) => tf.layers.Layer;
const StockDense = stockClass('Dense') as new (args: DenseArgs) => tf.layers.Layer;
const StockGelu = stockClass('gelu') as new () => { apply(x: tf.Tensor): tf.Tensor };

/** The stock layer's private state that the compact path reads (after build). */
interface LayerNormState {
  axis: number | number[];
  epsilon: number;
  center: boolean;
  scale: boolean;
  gamma: tf.LayerVariable;
  beta: tf.LayerVariable;
}

export class CompactLayerNormalization extends StockLayerNormalization {
  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor {
    const input = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor;
    const state = this as unknown as LayerNormState;
    const axes = Array.isArray(state.axis) ? state.axis : [state.axis];
    const lastAxis = axes.length === 1 && (axes[0] === -1 || axes[0] === input.rank - 1);
    if (!lastAxis || !state.center || !state.scale) {
      return super.call(inputs, kwargs) as tf.Tensor;
    }
    return layerNormLastAxis(
      input,
      state.gamma.read() as tf.Tensor1D,
      state.beta.read() as tf.Tensor1D,
      state.epsilon,
    );
  }
}

/** tf.layers' 'gelu' activation (serializes as 'gelu') computed by geluErf. */
class CompactGelu extends StockGelu {
  override apply(x: tf.Tensor): tf.Tensor {
    return geluErf(x);
  }
}

/** Dense; with activation 'gelu', the activation is geluErf's compact-gradient node. */
export class CompactGradientDense extends StockDense {
  constructor(args: DenseArgs) {
    super(args);
    const state = this as unknown as { activation: unknown };
    if (state.activation instanceof StockGelu) state.activation = new CompactGelu();
  }
}
