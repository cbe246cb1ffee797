/**
 * The data a model-mode analysis walks: one batch, or a whole dataset given as a
 * re-iterable collection (an array, any iterable whose iterator is fresh each time, an async
 * iterable), a tf.data.Dataset, or a function that returns a fresh iterable of new batches
 * (such as () => batches(x, y, 64)). Every Hessian-vector product walks the data again, so
 * one-shot iterators (generator objects) are refused rather than silently read once.
 */
import * as tf from '@tensorflow/tfjs';
import { AnalysisInputError } from './errors.js';

/** One batch: inputs and labels with the same number of rows. tf.data's {xs, ys} also works. */
export type AnalysisBatch = { x: tf.Tensor; y: tf.Tensor } | { xs: tf.Tensor; ys: tf.Tensor };

export type AnalysisData =
  | AnalysisBatch
  | Iterable<AnalysisBatch>
  | AsyncIterable<AnalysisBatch>
  | tf.data.Dataset<tf.TensorContainer>
  /** Called once per pass; the batches it yields are disposed after use, like tf.data's. */
  | (() => Iterable<AnalysisBatch> | AsyncIterable<AnalysisBatch>);

export interface NormalBatch {
  x: tf.Tensor;
  y: tf.Tensor;
  size: number;
}

function isTensor(t: unknown): t is tf.Tensor {
  return t instanceof tf.Tensor;
}

/** True for a single {x, y} / {xs, ys} batch rather than a collection of them. */
export function isSingleBatch(data: unknown): data is AnalysisBatch {
  if (data == null || typeof data !== 'object') return false;
  const d = data as Record<string, unknown>;
  return isTensor(d.x) || isTensor(d.xs) || isTensor(d.y) || isTensor(d.ys);
}

/** Checks one batch and gives it the {x, y, size} form; `where` names it in errors. */
export function normaliseBatch(
  batch: unknown,
  where: string,
  inputShape?: (number | null)[],
): NormalBatch {
  if (batch == null || typeof batch !== 'object') {
    throw new AnalysisInputError(
      `${where} is ${batch === null ? 'null' : typeof batch}, not a {x, y} batch.`,
    );
  }
  const b = batch as Record<string, unknown>;
  const x = b.x ?? b.xs;
  const y = b.y ?? b.ys;
  if (!isTensor(x) || !isTensor(y)) {
    throw new AnalysisInputError(
      `${where} must have tensor fields x and y (or xs and ys); got keys [${Object.keys(b).join(', ')}].`,
    );
  }
  if (x.rank === 0 || y.rank === 0) {
    throw new AnalysisInputError(`${where}: x and y need a batch axis; got a scalar.`);
  }
  if (x.shape[0] !== y.shape[0]) {
    throw new AnalysisInputError(
      `${where}: x has ${x.shape[0]} rows but y has ${y.shape[0]} (shapes [${x.shape.join(', ')}] and [${y.shape.join(', ')}]).`,
    );
  }
  if (x.shape[0] === 0) throw new AnalysisInputError(`${where} is empty (0 rows).`);
  if (inputShape !== undefined) {
    const fits =
      inputShape.length === x.rank &&
      inputShape.every((d, i) => i === 0 || d == null || d === x.shape[i]);
    if (!fits) {
      throw new AnalysisInputError(
        `${where}: x has shape [${x.shape.join(', ')}] but the model expects [${inputShape.map((d) => d ?? 'null').join(', ')}].`,
      );
    }
  }
  return { x, y, size: x.shape[0]! };
}

/**
 * Calls `visit` for every batch in order (only the first with `firstOnly`). Batches from a
 * tf.data.Dataset or a data function are new tensors owned by whoever iterates, so they are
 * disposed after `visit`; batches in arrays and iterables belong to the user and are kept.
 */
export async function forEachBatch(
  data: AnalysisData,
  visit: (batch: NormalBatch, index: number) => Promise<void> | void,
  inputShape?: (number | null)[],
  firstOnly = false,
): Promise<number> {
  if (isSingleBatch(data)) {
    await visit(normaliseBatch(data, 'The batch', inputShape), 0);
    return 1;
  }
  let index = 0;
  const handle = async (raw: unknown, owned: boolean) => {
    try {
      await visit(normaliseBatch(raw, `Batch ${index}`, inputShape), index);
    } finally {
      if (owned) tf.dispose(raw as tf.TensorContainer);
    }
    index++;
  };
  if (typeof data === 'function') {
    const fresh = data();
    if (isIterable(fresh)) {
      for (const batch of fresh) {
        await handle(batch, true);
        if (firstOnly) break;
      }
    } else if (isAsyncIterable(fresh)) {
      for await (const batch of fresh) {
        await handle(batch, true);
        if (firstOnly) break;
      }
    } else {
      throw new AnalysisInputError('The data function must return an iterable of {x, y} batches.');
    }
  } else if (data instanceof tf.data.Dataset) {
    const iterator = await data.iterator();
    for (;;) {
      const { value, done } = await iterator.next();
      if (done) break;
      await handle(value, true);
      if (firstOnly) break;
    }
  } else if (isIterable(data)) {
    for (const batch of data) {
      await handle(batch, false);
      if (firstOnly) break;
    }
  } else if (isAsyncIterable(data)) {
    for await (const batch of data) {
      await handle(batch, false);
      if (firstOnly) break;
    }
  } else {
    throw new AnalysisInputError(
      'data must be a {x, y} batch, an array or other iterable of batches, a tf.data.Dataset, or a function returning an iterable of batches.',
    );
  }
  if (index === 0) throw new AnalysisInputError('The dataset yielded no batches.');
  return index;
}

function isIterable(data: unknown): data is Iterable<unknown> {
  return data != null && typeof (data as Iterable<unknown>)[Symbol.iterator] === 'function';
}

function isAsyncIterable(data: unknown): data is AsyncIterable<unknown> {
  return (
    data != null && typeof (data as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function'
  );
}

/** Refuses data that cannot be walked more than once; called when an analyzer is built. */
export function assertReiterable(data: unknown): void {
  if (isSingleBatch(data) || data instanceof tf.data.Dataset || typeof data === 'function') return;
  if (isIterable(data)) {
    if ((data as Iterable<unknown>)[Symbol.iterator]() === (data as unknown)) {
      throw new AnalysisInputError(
        'data is a one-shot iterator (such as a generator object); every Hessian-vector product walks the data again, so pass an array, a tf.data.Dataset or an iterable that restarts.',
      );
    }
    return;
  }
  if (isAsyncIterable(data)) {
    if ((data as AsyncIterable<unknown>)[Symbol.asyncIterator]() === (data as unknown)) {
      throw new AnalysisInputError(
        'data is a one-shot async iterator; pass an array, a tf.data.Dataset or an iterable that restarts.',
      );
    }
    return;
  }
  throw new AnalysisInputError(
    'data must be a {x, y} batch, an array or other iterable of batches, a tf.data.Dataset, or a function returning an iterable of batches.',
  );
}
