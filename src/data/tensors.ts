/**
 * From raw image bytes to training tensors, and minibatches over them. Browser-safe.
 *
 * Ownership: toImageTensors returns new tensors that the caller disposes. batches() never
 * disposes the x and y it is given; every batch it yields is a pair of new tensors that
 * the caller owns and disposes (or wraps the loop body in tf.tidy). Batches are made one
 * at a time when asked for, so leaving the loop early leaks nothing.
 */
import * as tf from '@tensorflow/tfjs';
import { seededPermutation } from './shuffle.js';
import type { ImageDataset } from './image-dataset.js';

export interface ImageTensors {
  /** [count, height, width, channels] float32 in [0, 1] (bytes / 255). */
  x: tf.Tensor4D;
  /** [count, classes] float32 one-hot labels. */
  y: tf.Tensor2D;
}

export interface ImageTensorOptions {
  /** Channels per pixel, interleaved (NHWC bytes); default 1 (greyscale). */
  channels?: number;
  /** Length of the one-hot label vectors; labels must be below it (default 10). */
  classes?: number;
}

/** Converts `count` images of height x width x channels bytes (NHWC) and their labels to tensors. */
export function toImageTensors(
  images: Uint8Array,
  labels: Uint8Array,
  count: number,
  height: number,
  width: number,
  options: ImageTensorOptions = {},
): ImageTensors {
  const { channels = 1, classes = 10 } = options;
  for (const [name, value] of Object.entries({ count, height, width, channels, classes })) {
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(`toImageTensors: ${name} must be a positive integer, got ${value}.`);
    }
  }
  const size = count * height * width * channels;
  if (images.length !== size) {
    throw new RangeError(
      `toImageTensors: ${count} images of ${height}x${width}x${channels} need ${size} bytes, got ${images.length}.`,
    );
  }
  if (labels.length !== count) {
    throw new RangeError(`toImageTensors: ${count} images need ${count} labels, got ${labels.length}.`);
  }
  const bad = labels.findIndex((l) => l >= classes);
  if (bad >= 0) {
    throw new RangeError(
      `toImageTensors: label ${labels[bad]} at index ${bad} is not below ${classes} classes.`,
    );
  }
  const pixels = new Float32Array(images.length);
  for (let i = 0; i < images.length; i++) pixels[i] = images[i]! / 255;
  const x = tf.tensor4d(pixels, [count, height, width, channels], 'float32');
  const y = tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), classes).toFloat() as tf.Tensor2D);
  return { x, y };
}

/** toImageTensors for a whole dataset as the readers return it. */
export function datasetToTensors(
  dataset: ImageDataset,
  options: Pick<ImageTensorOptions, 'classes'> = {},
): ImageTensors {
  const { images, labels, count, height, width, channels } = dataset;
  return toImageTensors(images, labels, count, height, width, { channels, ...options });
}

export interface BatchOptions {
  /** Visit the examples in a random order (default false: in order). */
  shuffle?: boolean;
  /**
   * Seed for the order when shuffling, so runs repeat exactly; pass a different seed each
   * epoch (e.g. seed + epoch) for a fresh order. Without one, the order is unseeded.
   */
  seed?: number;
  /** Skip the last batch when it would be smaller than batchSize (default false). */
  dropRemainder?: boolean;
}

export interface Batch<X extends tf.Tensor = tf.Tensor, Y extends tf.Tensor = tf.Tensor> {
  x: X;
  y: Y;
}

/** How many batches batches() yields for n examples. */
export function batchCount(n: number, batchSize: number, dropRemainder = false): number {
  return dropRemainder ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

/**
 * One epoch of minibatches along the first axis of x and y. Each yielded batch holds new
 * tensors that the caller must dispose; x and y stay the caller's and are not disposed.
 */
export function* batches<X extends tf.Tensor, Y extends tf.Tensor>(
  x: X,
  y: Y,
  batchSize: number,
  options: BatchOptions = {},
): Generator<Batch<X, Y>, void, undefined> {
  const n = x.shape[0];
  if (n === undefined || y.shape[0] !== n) {
    throw new RangeError(
      `batches: x and y must have the same first dimension, got x [${x.shape.join(', ')}] and y [${y.shape.join(', ')}].`,
    );
  }
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batches: batchSize must be a positive integer, got ${batchSize}.`);
  }
  const { shuffle = false, dropRemainder = false } = options;
  if (options.seed !== undefined && !Number.isFinite(options.seed)) {
    throw new RangeError(`batches: seed must be a finite number, got ${options.seed}.`);
  }
  const order = shuffle
    ? seededPermutation(n, options.seed ?? Math.floor(Math.random() * 2 ** 32))
    : undefined;
  const total = batchCount(n, batchSize, dropRemainder);
  for (let b = 0; b < total; b++) {
    const start = b * batchSize;
    const size = Math.min(batchSize, n - start);
    yield tf.tidy(() => {
      if (order === undefined) {
        return { x: tf.slice(x, start, size) as X, y: tf.slice(y, start, size) as Y };
      }
      const indices = tf.tensor1d(order.subarray(start, start + size), 'int32');
      return { x: tf.gather(x, indices) as X, y: tf.gather(y, indices) as Y };
    });
  }
}
