/**
 * A symmetric linear operator on flat float32 vectors, in the spirit of curvlinops: the
 * estimators only ever ask for products A v, so the same code runs on an explicit matrix
 * (fast, exact tests) and on Hessian-vector products of a network.
 *
 * Vectors are rows: a batch of k vectors is a [k, n] tensor, so that several products can
 * share work (one forward and gradient pass for several Hessian-vector products).
 */
import * as tf from '@tensorflow/tfjs';

export interface SymmetricOperator {
  /** The dimension n of the vectors the operator acts on. */
  readonly size: number;
  /** How many products (one per vector) the operator has computed so far. */
  readonly products: number;
  /** A v for every row v of `vectors` ([k, n]); returns [k, n]. The caller disposes both. */
  matmat(vectors: tf.Tensor2D): Promise<tf.Tensor2D>;
}

/** Thrown for arguments an estimator or operator cannot work with; the message names the problem. */
export class EstimatorInputError extends Error {
  override name = 'EstimatorInputError';
}

/** A v for one vector ([n]); the caller disposes the result. */
export async function matvec(op: SymmetricOperator, v: tf.Tensor1D): Promise<tf.Tensor1D> {
  const row = v.reshape([1, op.size]) as tf.Tensor2D;
  try {
    const product = await op.matmat(row);
    const flat = product.reshape([op.size]) as tf.Tensor1D;
    product.dispose();
    return flat;
  } finally {
    row.dispose();
  }
}

/**
 * Counts products and checks shapes; subclasses implement `apply` for a validated batch.
 */
export abstract class CountingOperator implements SymmetricOperator {
  private count = 0;

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) {
      throw new EstimatorInputError(`An operator needs a positive integer size, got ${size}.`);
    }
  }

  get products(): number {
    return this.count;
  }

  async matmat(vectors: tf.Tensor2D): Promise<tf.Tensor2D> {
    if (!(vectors instanceof tf.Tensor) || vectors.rank !== 2 || vectors.shape[1] !== this.size) {
      const shape = vectors instanceof tf.Tensor ? `[${vectors.shape.join(', ')}]` : typeof vectors;
      throw new EstimatorInputError(
        `Expected vectors as a [k, ${this.size}] tensor (one row per vector), got ${shape}.`,
      );
    }
    const result = await this.apply(vectors);
    this.count += vectors.shape[0];
    return result;
  }

  protected abstract apply(vectors: tf.Tensor2D): Promise<tf.Tensor2D>;
}

/** An explicit symmetric matrix as an operator (for tests and small problems). */
export class MatrixOperator extends CountingOperator {
  private readonly matrix: tf.Tensor2D;

  /** `matrix` is n x n, row-major (number[][] or a flat array of n * n entries). */
  constructor(matrix: ArrayLike<number> | readonly (readonly number[])[], n?: number) {
    const flat =
      Array.isArray(matrix) && Array.isArray(matrix[0])
        ? (matrix as readonly (readonly number[])[]).flat()
        : Array.from(matrix as ArrayLike<number>);
    const size = n ?? Math.round(Math.sqrt(flat.length));
    if (size * size !== flat.length) {
      throw new EstimatorInputError(
        `MatrixOperator: ${flat.length} entries do not form a square ${size}x${size} matrix.`,
      );
    }
    super(size);
    this.matrix = tf.tensor2d(flat, [size, size], 'float32');
  }

  protected async apply(vectors: tf.Tensor2D): Promise<tf.Tensor2D> {
    // Rows times a symmetric matrix: (A V^T)^T = V A.
    return tf.matMul(vectors, this.matrix);
  }

  dispose(): void {
    this.matrix.dispose();
  }
}
