/**
 * Labelled greyscale images held as raw bytes, as MNIST-style datasets ship them.
 * Browser-safe: assembling one from parsed IDX arrays needs no Node built-ins.
 */
import { IdxFormatError, type IdxArray } from './idx.js';

/**
 * `count` images and their labels. Images are bytes in NHWC order (row-major, channels
 * interleaved; for greyscale, 0 = background).
 */
export interface ImageDataset {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  height: number;
  width: number;
  /** 1 for greyscale (Fashion-MNIST), 3 for RGB (CIFAR-10). */
  channels: number;
}

/** The Fashion-MNIST class names, indexed by label. */
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const;

export interface ImageDatasetOptions {
  /** Keep at most this many records, the first ones (default: all). */
  limit?: number;
  /** Labels must be below this (default 10). */
  classes?: number;
  /** Names for the two inputs in error messages. */
  imagesSource?: string;
  labelsSource?: string;
}

/** Pairs an IDX image array [n, h, w] with an IDX label array [n], checking they agree. */
export function imageDatasetFromIdx(
  images: IdxArray,
  labels: IdxArray,
  options: ImageDatasetOptions = {},
): ImageDataset {
  const { imagesSource = 'images', labelsSource = 'labels', classes = 10 } = options;
  if (images.shape.length !== 3) {
    throw new IdxFormatError(
      `${imagesSource}: expected 3 dimensions [count, height, width], got [${images.shape.join(', ')}].`,
    );
  }
  if (labels.shape.length !== 1) {
    throw new IdxFormatError(
      `${labelsSource}: expected 1 dimension [count], got [${labels.shape.join(', ')}].`,
    );
  }
  const [total, height, width] = images.shape as [number, number, number];
  if (labels.shape[0] !== total) {
    throw new IdxFormatError(
      `${imagesSource} holds ${total} images but ${labelsSource} holds ${labels.shape[0]} labels.`,
    );
  }
  const count = Math.min(total, checkLimit(options.limit) ?? total);
  const labelBytes = labels.data.subarray(0, count);
  const bad = labelBytes.findIndex((l) => l >= classes);
  if (bad >= 0) {
    throw new IdxFormatError(
      `${labelsSource}: label ${labelBytes[bad]} at record ${bad} is not below ${classes} classes.`,
    );
  }
  // Copy, so the caller does not keep the whole decompressed file alive through a view.
  return {
    images: images.data.slice(0, count * height * width),
    labels: labelBytes.slice(),
    count,
    height,
    width,
    channels: 1,
  };
}

function checkLimit(limit: number | undefined): number | undefined {
  if (limit === undefined) return undefined;
  if (!Number.isInteger(limit) || limit < 0) {
    throw new RangeError(`limit must be a non-negative integer, got ${limit}.`);
  }
  return limit;
}

/** How many records carry each label, indexed by label. */
export function classCounts(labels: Uint8Array, classes = 10): number[] {
  const counts = new Array<number>(classes).fill(0);
  for (const l of labels) counts[l] = (counts[l] ?? 0) + 1;
  return counts;
}
