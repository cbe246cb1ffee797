/**
 * The parameter-free shortcut of a ResNet block that changes shape (He et al. 2016, option A):
 * the identity, subsampled with stride s (keep pixels (s i, s j)), with zero channels
 * appended up to `filters`. Both in one 1x1 stride-s 'valid' convolution with a constant 0/1
 * filter (input channel c to output channel c): conv kernels are fast everywhere (native, wasm)
 * and have verified second derivatives, where the former 1x1 average pool + tf.pad ran TF.js's
 * JS AvgPoolGrad, Slice (pad's gradient, strided over channels) and PadV2, ~1.9 s of a 14 s
 * ResNet-20 AdaHessian step at batch 64. Each output is x * 1 plus exact zeros, so the values
 * and gradients are the pool-and-pad's bit for bit for finite x (a NaN or infinite input,
 * times 0, would turn the other channels of its pixel NaN; the loss is NaN either way).
 * Its output size is ceil(H / s), the same as a 'same'-padded stride-s convolution, so it
 * adds to the block's main path for any H.
 */
import * as tf from '@tensorflow/tfjs';

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

export interface ZeroPadShortcutArgs extends LayerArgs {
  /** Output channels; at least the input's. */
  filters: number;
  /** Spatial subsampling step (1 keeps every pixel). */
  strides: number;
}

export class ZeroPadShortcut extends tf.layers.Layer {
  static readonly className = 'ZeroPadShortcut';
  readonly filters: number;
  readonly strides: number;

  constructor(args: ZeroPadShortcutArgs) {
    super(args);
    for (const [key, value] of [
      ['filters', args.filters],
      ['strides', args.strides],
    ] as const) {
      if (!Number.isInteger(value) || value < 1) {
        throw new Error(`ZeroPadShortcut: '${key}' must be a positive integer, got ${value}.`);
      }
    }
    this.filters = args.filters;
    this.strides = args.strides;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const channels = singleShape(inputShape)[3];
    if (channels == null || channels > this.filters) {
      throw new Error(
        `ZeroPadShortcut: the input has ${channels} channels, more than filters = ${this.filters}.`,
      );
    }
    super.build(inputShape);
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const [n, h, w] = singleShape(inputShape);
    const down = (d: number | null) => (d == null ? null : Math.ceil(d / this.strides));
    return [n ?? null, down(h ?? null), down(w ?? null), this.filters];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
      const channels = x.shape[3];
      if (this.strides === 1 && channels === this.filters) return tf.clone(x);
      return tf.conv2d(x, selectionFilter(channels, this.filters), this.strides, 'valid');
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), filters: this.filters, strides: this.strides };
  }
}
tf.serialization.registerClass(ZeroPadShortcut);

/** [1, 1, channels, filters]: 1 from input channel c to output channel c, 0 elsewhere. */
function selectionFilter(channels: number, filters: number): tf.Tensor4D {
  const values = new Float32Array(channels * filters);
  for (let c = 0; c < channels; c++) values[c * filters + c] = 1;
  return tf.tensor4d(values, [1, 1, channels, filters]);
}

function singleShape(shape: tf.Shape | tf.Shape[]): tf.Shape {
  return (Array.isArray(shape[0]) ? shape[0] : shape) as tf.Shape;
}
