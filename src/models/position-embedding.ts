/**
 * A learned positional embedding: adds a trainable [sequenceLength, features] table to every
 * sequence of a [batch, sequenceLength, features] input, row t to position t (GPT style).
 * The sequence length is fixed by the input shape the layer is built with.
 */
import * as tf from '@tensorflow/tfjs';

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

export interface PositionEmbeddingArgs extends LayerArgs {
  /** Seed of the table's Glorot-uniform initialiser; omit (or null) for a fresh draw. */
  seed?: number | null;
}

export class PositionEmbedding extends tf.layers.Layer {
  static readonly className = 'PositionEmbedding';
  readonly seed: number | null;
  private table: tf.LayerVariable | null = null;

  constructor(args: PositionEmbeddingArgs = {}) {
    super(args);
    this.seed = args.seed ?? null;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = singleShape(inputShape);
    const [, length, features] = shape;
    if (shape.length !== 3 || length == null || features == null) {
      throw new Error(
        `PositionEmbedding: expects input [batch, sequenceLength, features] with known sizes, got [${shape.join(', ')}].`,
      );
    }
    this.table = this.addWeight(
      'embeddings',
      [length, features],
      'float32',
      tf.initializers.glorotUniform(this.seed == null ? {} : { seed: this.seed }),
    );
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return singleShape(inputShape);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0]! : inputs;
      const table = this.table!.read();
      if (x.shape[1] !== table.shape[0]) {
        throw new Error(
          `PositionEmbedding: built for sequences of ${table.shape[0]}, got ${x.shape[1]}.`,
        );
      }
      return tf.add(x, table);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), seed: this.seed };
  }
}
tf.serialization.registerClass(PositionEmbedding);

function singleShape(shape: tf.Shape | tf.Shape[]): tf.Shape {
  return (Array.isArray(shape[0]) ? shape[0] : shape) as tf.Shape;
}
