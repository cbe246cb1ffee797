/**
 * The parameter-free shortcut of a ResNet block that changes shape (He et al. 2016, option A):
 * the identity, subsampled with stride s (keep pixels (s i, s j)), with zero channels
 * appended up to `filters`. Subsampling is a 1x1 average pool with stride s, which keeps
 * exactly those pixels and has verified second derivatives (a strided slice has no gradient
 * in TF.js); the zero channels come from tf.pad. Its output size is ceil(H / s), the same as
 * a 'same'-padded stride-s convolution, so it adds to the block's main path for any H.
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
      const sub = this.strides === 1 ? x : tf.avgPool(x, 1, this.strides, 'valid');
      const extra = this.filters - x.shape[3];
      return extra === 0
        ? tf.clone(sub)
        : tf.pad(sub, [
            [0, 0],
            [0, 0],
            [0, 0],
            [0, extra],
          ]);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), filters: this.filters, strides: this.strides };
  }
}
tf.serialization.registerClass(ZeroPadShortcut);

function singleShape(shape: tf.Shape | tf.Shape[]): tf.Shape {
  return (Array.isArray(shape[0]) ? shape[0] : shape) as tf.Shape;
}
