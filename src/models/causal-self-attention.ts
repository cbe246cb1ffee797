/**
 * Causal multi-head self-attention (Vaswani et al. 2017; decoder-only as in GPT) as a
 * tf.layers layer, since tf.layers has none. For x of shape [batch, T, d]:
 *
 *   q, k, v = x Wq + bq, x Wk + bk, x Wv + bv, each split into `heads` heads of d / heads
 *   A_h     = softmax(q_h k_h^T / sqrt(d / heads) + M)     M[i][j] = 0 (j <= i), -1e9 (j > i)
 *   out     = concat_h(A_h v_h) Wo + bo
 *
 * Position i attends to positions j <= i only. The mask M is a constant added to the scores
 * (not a comparison on the gradient tape): exp(-1e9 - max) is exactly 0 in float32, so the
 * masked weights are exactly zero and so are their first and second derivatives. Every op
 * here (MatMul / BatchMatMul, Add, Reshape, Transpose, Multiply, Softmax) has verified
 * second derivatives, so the layer can be on a Hessian-vector product's path.
 */
import * as tf from '@tensorflow/tfjs';

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

export interface CausalSelfAttentionArgs extends LayerArgs {
  /** Number of heads; must divide the input's feature size. */
  heads: number;
  /**
   * Seed of the projections' Glorot-uniform initialisers (Wq, Wk, Wv, Wo get seed, seed + 1,
   * seed + 2, seed + 3); omit (or null) for fresh draws. Biases start at zero.
   */
  seed?: number | null;
}

/** Added to the scores of future positions. */
const MASKED = -1e9;

const PROJECTIONS = ['query', 'key', 'value', 'output'] as const;
type Projection = (typeof PROJECTIONS)[number];

export class CausalSelfAttention extends tf.layers.Layer {
  static readonly className = 'CausalSelfAttention';
  readonly heads: number;
  readonly seed: number | null;
  private kernels = new Map<Projection, tf.LayerVariable>();
  private biases = new Map<Projection, tf.LayerVariable>();

  constructor(args: CausalSelfAttentionArgs) {
    super(args);
    if (!Number.isInteger(args.heads) || args.heads < 1) {
      throw new Error(
        `CausalSelfAttention: 'heads' must be a positive integer, got ${args.heads}.`,
      );
    }
    this.heads = args.heads;
    this.seed = args.seed ?? null;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = singleShape(inputShape);
    const features = shape[2];
    if (shape.length !== 3 || features == null) {
      throw new Error(
        `CausalSelfAttention: expects input [batch, sequenceLength, features] with known features, got [${shape.join(', ')}].`,
      );
    }
    if (features % this.heads !== 0) {
      throw new Error(
        `CausalSelfAttention: ${this.heads} heads must divide the ${features} input features.`,
      );
    }
    PROJECTIONS.forEach((p, i) => {
      const init = tf.initializers.glorotUniform(this.seed == null ? {} : { seed: this.seed + i });
      this.kernels.set(p, this.addWeight(`${p}_kernel`, [features, features], 'float32', init));
      this.biases.set(
        p,
        this.addWeight(`${p}_bias`, [features], 'float32', tf.initializers.zeros()),
      );
    });
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return singleShape(inputShape);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0]! : inputs;
      const [, length, features] = x.shape as [number, number, number];
      const headSize = features / this.heads;
      const rows = tf.reshape(x, [-1, features]);
      const project = (p: Projection, t: tf.Tensor) =>
        tf.add(tf.matMul(t, this.kernels.get(p)!.read()), this.biases.get(p)!.read());
      // [batch * T, d] -> [batch, heads, T, d / heads]
      const splitHeads = (t: tf.Tensor) =>
        tf.transpose(tf.reshape(t, [-1, length, this.heads, headSize]), [0, 2, 1, 3]);
      const q = splitHeads(project('query', rows));
      const k = splitHeads(project('key', rows));
      const v = splitHeads(project('value', rows));
      const scores = tf.add(
        tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(headSize)),
        causalMask(length),
      );
      const context = tf.matMul(tf.softmax(scores), v); // [batch, heads, T, d / heads]
      const merged = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, features]);
      return tf.reshape(project('output', merged), [-1, length, features]);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), heads: this.heads, seed: this.seed };
  }
}
tf.serialization.registerClass(CausalSelfAttention);

/** [T, T]: 0 on and below the diagonal, MASKED above it (a constant, off the tape). */
function causalMask(length: number): tf.Tensor2D {
  const values = new Float32Array(length * length);
  for (let i = 0; i < length; i++) {
    for (let j = i + 1; j < length; j++) values[i * length + j] = MASKED;
  }
  return tf.tensor2d(values, [length, length]);
}

function singleShape(shape: tf.Shape | tf.Shape[]): tf.Shape {
  return (Array.isArray(shape[0]) ? shape[0] : shape) as tf.Shape;
}
