/**
 * The Hessian of a loss as a symmetric operator on flat parameter vectors, built on
 * gradAndHvpMany. Over a dataset every product is the size-weighted mean of the per-batch
 * products, i.e. the Hessian of the mean loss over all examples (when each batch loss is a
 * mean over its rows). Several vectors share one forward and gradient pass per batch.
 */
import * as tf from '@tensorflow/tfjs';
import { gradAndHvpMany } from '../autodiff/hvp.js';
import { privateEngine } from '../autodiff/engine.js';
import { installSecondOrderSupport } from '../autodiff/install.js';
import { CountingOperator } from '../estimators/operator.js';
import { AnalysisInputError } from './errors.js';
import { autoMicroBatchSize, checkMicroBatchSize, microBatchRows } from './micro-batch.js';
import {
  assertReiterable,
  type AnalysisData,
  forEachBatch,
  isSingleBatch,
  normaliseBatch,
} from './data-source.js';

/** A loss closure and its weight in the mean (the batch size in model mode). */
export interface WeightedLoss {
  lossFn: () => tf.Scalar;
  weight: number;
}

/** Visits the loss of every batch (or only the first); the closures are valid during the visit. */
export type LossWalker = (
  visit: (loss: WeightedLoss) => Promise<void> | void,
  firstOnly?: boolean,
) => Promise<void>;

/** A loss on labels and predictions, e.g. softmaxCrossEntropy from adahessian's losses. */
export type LabelLoss = (labels: tf.Tensor, predictions: tf.Tensor) => tf.Scalar;

export interface HessianOperatorOptions {
  /** Vectors per second-order pass; more share work, fewer use less memory (default 16). */
  maxVectorsPerPass?: number;
}

export interface ModelLossOptions {
  model: tf.LayersModel;
  loss: LabelLoss;
  data: AnalysisData;
  /** Run the model in training mode (batch statistics, dropout); default false. */
  training?: boolean;
  /**
   * Split every batch into micro-batches of at most this many examples and sum their
   * size-weighted products, so that memory scales with the micro-batch rather than the batch.
   * In inference mode the product is the same up to float32 rounding; in training mode batch
   * statistics are then taken per micro-batch, a different function. Default 'auto' in
   * inference mode (what fits the backend's memory: autoMicroBatchSize), whole batches in
   * training mode.
   */
  microBatchSize?: number | 'auto';
}

export class HessianOperator extends CountingOperator {
  /** Number of entries of each variable, in order: the blocks of a flat vector. */
  readonly segments: number[];
  private readonly maxVectorsPerPass: number;

  constructor(
    readonly vars: tf.Variable[],
    readonly walk: LossWalker,
    options: HessianOperatorOptions = {},
  ) {
    checkVariables(vars);
    // Idempotent; done here too so that deep imports (not via the package entry) get the kernels.
    installSecondOrderSupport();
    const segments = vars.map((v) => v.size);
    super(segments.reduce((a, b) => a + b, 0));
    this.segments = segments;
    this.maxVectorsPerPass = options.maxVectorsPerPass ?? 16;
    if (!Number.isInteger(this.maxVectorsPerPass) || this.maxVectorsPerPass < 1) {
      throw new AnalysisInputError(
        `maxVectorsPerPass must be a positive integer, got ${this.maxVectorsPerPass}.`,
      );
    }
  }

  /** The Hessian of `lossFn` with respect to `vars`. */
  static fromLoss(
    lossFn: () => tf.Scalar,
    vars: tf.Variable[],
    options: HessianOperatorOptions = {},
  ): HessianOperator {
    if (typeof lossFn !== 'function') {
      throw new AnalysisInputError('lossFn must be a function that returns a scalar loss.');
    }
    return new HessianOperator(vars, async (visit) => visit({ lossFn, weight: 1 }), options);
  }

  /** The Hessian of the mean loss of `model` over `data`, with respect to its trainable weights. */
  static fromModel(
    source: ModelLossOptions,
    options: HessianOperatorOptions = {},
  ): HessianOperator {
    return new HessianOperator(modelVariables(source.model), modelLossWalker(source), options);
  }

  /** The diagonal block of the Hessian for the variables at `indices`. */
  block(indices: number[]): HessianOperator {
    return new HessianOperator(
      indices.map((i) => this.vars[i]!),
      this.walk,
      { maxVectorsPerPass: this.maxVectorsPerPass },
    );
  }

  /** A flat [n] vector split into tensors shaped like the variables. */
  toVariables(flat: tf.Tensor): tf.Tensor[] {
    return tf.tidy(() =>
      tf
        .split(flat.reshape([-1]), this.segments)
        .map((part, i) => part.reshape(this.vars[i]!.shape)),
    );
  }

  /** Tensors shaped like the variables joined into one flat [n] vector. */
  flatten(tensors: tf.Tensor[]): tf.Tensor1D {
    return tf.tidy(() => tf.concat(tensors.map((t) => t.reshape([-1]))) as tf.Tensor1D);
  }

  /** The (size-weighted mean) loss at the current variable values. */
  async loss(): Promise<number> {
    let sum = 0;
    let total = 0;
    await this.walk(({ lossFn, weight }) => {
      sum += weight * tf.tidy(() => lossFn().dataSync()[0]!);
      total += weight;
    });
    return sum / total;
  }

  /** Indices of the variables the loss does not depend on (checked on the first batch). */
  async variablesWithoutGradient(): Promise<number[]> {
    const missing: number[] = [];
    await this.walk(({ lossFn }) => {
      tf.tidy(() => {
        const { grads } = privateEngine().gradients(lossFn, this.vars, undefined, true);
        grads.forEach((g, i) => {
          if (g == null) missing.push(i);
        });
      });
    }, true);
    return missing;
  }

  protected async apply(vectors: tf.Tensor2D): Promise<tf.Tensor2D> {
    const k = vectors.shape[0];
    const chunks: tf.Tensor2D[] = [];
    try {
      for (let from = 0; from < k; from += this.maxVectorsPerPass) {
        const count = Math.min(this.maxVectorsPerPass, k - from);
        const rows = vectors.slice([from, 0], [count, this.size]);
        try {
          chunks.push(await this.applyChunk(rows));
        } finally {
          rows.dispose();
        }
      }
      return chunks.length === 1 ? chunks[0]!.clone() : (tf.concat(chunks, 0) as tf.Tensor2D);
    } finally {
      tf.dispose(chunks);
    }
  }

  private async applyChunk(rows: tf.Tensor2D): Promise<tf.Tensor2D> {
    const lists = tf.unstack(rows).map((row) => {
      const parts = this.toVariables(row);
      row.dispose();
      return parts;
    });
    let sum: tf.Tensor2D | null = null;
    let total = 0;
    try {
      await this.walk(({ lossFn, weight }) => {
        const { loss, grads, hvps } = gradAndHvpMany(lossFn, this.vars, lists);
        const next: tf.Tensor2D = tf.tidy(() => {
          const stacked = tf.stack(hvps.map((h) => tf.concat(h.map((t) => t.reshape([-1])))));
          const weighted = tf.mul(stacked, weight);
          return (sum == null ? weighted : tf.add(sum, weighted)) as tf.Tensor2D;
        });
        tf.dispose([loss, ...grads, ...hvps.flat()]);
        sum?.dispose();
        sum = next;
        total += weight;
      });
    } catch (error) {
      (sum as tf.Tensor2D | null)?.dispose();
      throw error;
    } finally {
      tf.dispose(lists.flat());
    }
    const result = tf.div(sum!, total) as tf.Tensor2D;
    (sum as tf.Tensor2D | null)?.dispose();
    return result;
  }
}

function checkVariables(vars: tf.Variable[]): void {
  if (!Array.isArray(vars) || vars.length === 0) {
    throw new AnalysisInputError('vars must be a non-empty array of tf.Variable.');
  }
  vars.forEach((v, i) => {
    if (!(v instanceof tf.Variable)) {
      throw new AnalysisInputError(`vars[${i}] is not a tf.Variable.`);
    }
    if (v.dtype !== 'float32') {
      throw new AnalysisInputError(
        `vars[${i}] ('${v.name}') is ${v.dtype}; only float32 variables are supported.`,
      );
    }
  });
}

/** The tf.Variable behind each trainable weight of a tf.layers model. */
export function modelVariables(model: tf.LayersModel): tf.Variable[] {
  if (!(model instanceof tf.LayersModel)) {
    throw new AnalysisInputError('model must be a tf.LayersModel (tf.sequential() or tf.model()).');
  }
  const vars = model.trainableWeights.map((w) => (w as unknown as { read(): tf.Variable }).read());
  if (vars.length === 0) throw new AnalysisInputError('The model has no trainable weights.');
  return vars;
}

function modelLossWalker({
  model,
  loss,
  data,
  training = false,
  microBatchSize,
}: ModelLossOptions): LossWalker {
  if (typeof loss !== 'function') {
    throw new AnalysisInputError('loss must be a function (labels, predictions) => tf.Scalar.');
  }
  if (data == null)
    throw new AnalysisInputError('data is required with a model: a {x, y} batch or a dataset.');
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new AnalysisInputError(
      `Only models with one input and one output are supported; this one has ${model.inputs.length} and ${model.outputs.length}.`,
    );
  }
  checkMicroBatchSize(microBatchSize);
  const mostRows =
    microBatchSize === 'auto' || (microBatchSize === undefined && !training)
      ? autoMicroBatchSize(model)
      : microBatchSize;
  assertReiterable(data);
  const inputShape = model.inputs[0]!.shape;
  // A single batch can be checked now rather than at the first product.
  if (isSingleBatch(data)) normaliseBatch(data, 'The batch', inputShape);
  const visitExamples = async (
    x: tf.Tensor,
    y: tf.Tensor,
    size: number,
    visit: (loss: WeightedLoss) => Promise<void> | void,
  ) => {
    const state = saveModelState(model);
    try {
      const lossFn = () => {
        const predictions = model.apply(x, { training }) as tf.Tensor;
        return loss(y, predictions);
      };
      await visit({ lossFn, weight: size });
    } finally {
      // Training mode moves batch norm's moving statistics on every forward pass; the
      // analysis must leave the model as it found it.
      restoreModelState(state);
    }
  };
  return async (visit, firstOnly = false) => {
    await forEachBatch(
      data,
      async ({ x, y, size }) => {
        if (mostRows === undefined || size <= mostRows) {
          await visitExamples(x, y, size, visit);
          return;
        }
        // Each micro-batch's mean loss weighted by its size: the products sum to the batch's.
        let start = 0;
        for (const rows of microBatchRows(size, mostRows)) {
          const xs = x.slice(start, rows);
          const ys = y.slice(start, rows);
          start += rows;
          try {
            await visitExamples(xs, ys, rows, visit);
          } finally {
            tf.dispose([xs, ys]);
          }
          if (firstOnly) break;
        }
      },
      inputShape,
      firstOnly,
    );
  };
}

/** The model's non-trainable variables (batch norm's moving statistics) and their values. */
interface ModelState {
  variables: tf.Variable[];
  values: tf.Tensor[];
}

function saveModelState(model: tf.LayersModel): ModelState {
  const variables = model.nonTrainableWeights.map((w) =>
    (w as unknown as { read(): tf.Variable }).read(),
  );
  // A clone holds the current values (cpu shares the data, wasm copies it); a layer's write
  // gives its variable new data, so the clone still has the old.
  return { variables, values: variables.map((v) => tf.clone(v)) };
}

function restoreModelState({ variables, values }: ModelState): void {
  variables.forEach((v, i) => {
    const saved = values[i]!;
    // Unchanged on cpu when the data is still shared; otherwise put the saved values back.
    if (dataIdOf(v) !== dataIdOf(saved)) v.assign(saved);
  });
  tf.dispose(values);
}

const dataIdOf = (t: tf.Tensor): object => (t as unknown as { dataId: object }).dataId;
