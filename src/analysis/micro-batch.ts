/**
 * How many examples one Hessian-vector product can take at once. A product keeps the
 * forward pass, the gradient pass and one second-order sweep alive together, so its memory
 * grows with the batch: on ResNet-20 (32x32x3 inputs) about 16.5 MB per example on wasm,
 * whose heap stops at 4 GB. Splitting a batch into micro-batches and summing their
 * size-weighted products gives the same product in a fraction of the memory.
 */
import * as tf from '@tensorflow/tfjs';
import { AnalysisInputError } from './errors.js';

/**
 * Bytes one product holds per float of layer output. Measured on wasm: ResNet-20 (666,698
 * output floats per example) grew the heap from 611 MB at batch 32 to 1139 MB at batch 64,
 * 6.2 floats kept per output float (17 before the sweep freed its temporaries); rounded up.
 */
const BYTES_PER_OUTPUT_FLOAT = 4 * 8;

/** Memory one micro-batch's product may use: wasm's heap ends at 4 GB and fragments. */
const BUDGET_BYTES: Record<string, number> = { wasm: 1024 ** 3 };
const DEFAULT_BUDGET_BYTES = 2 * 1024 ** 3;

/** Floats of every layer's output for one example (the activations a forward pass keeps). */
export function outputFloatsPerExample(model: tf.LayersModel): number {
  let floats = 0;
  for (const layer of model.layers) {
    let shapes: tf.Shape | tf.Shape[];
    try {
      shapes = layer.outputShape;
    } catch {
      continue; // shared with different output shapes: none to count (the estimate runs low)
    }
    const list = (Array.isArray(shapes[0]) ? shapes : [shapes]) as (number | null)[][];
    for (const shape of list) floats += shape.slice(1).reduce<number>((a, d) => a * (d ?? 1), 1);
  }
  return floats;
}

/**
 * The largest micro-batch whose product should fit the backend's memory budget (at least 1):
 * 50 examples for ResNet-20 (32x32x3) and 1330 for the small CNN on wasm.
 */
export function autoMicroBatchSize(
  model: tf.LayersModel,
  backend: string = tf.getBackend(),
): number {
  const budget = BUDGET_BYTES[backend] ?? DEFAULT_BUDGET_BYTES;
  const perExample = outputFloatsPerExample(model) * BYTES_PER_OUTPUT_FLOAT;
  return Math.max(1, Math.floor(budget / Math.max(1, perExample)));
}

/** Checks a microBatchSize option: a positive integer, 'auto', or undefined (whole batches). */
export function checkMicroBatchSize(value: unknown): void {
  if (value === undefined || value === 'auto') return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new AnalysisInputError(
      `microBatchSize must be a positive integer or 'auto', got ${String(value)}.`,
    );
  }
}

/** Row counts of the micro-batches of a batch of `size`: as even as possible, none above `most`. */
export function microBatchRows(size: number, most: number): number[] {
  const parts = Math.ceil(size / most);
  const small = Math.floor(size / parts);
  const large = size - small * parts; // this many parts get one row more
  return Array.from({ length: parts }, (_, i) => small + (i < large ? 1 : 0));
}
