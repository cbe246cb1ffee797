/** Node-only CIFAR-10 reader for the binary version (cifar-10-batches-bin). */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CIFAR10_RECORD_BYTES, parseCifar10 } from '../cifar10.js';
import type { ImageDataset } from '../image-dataset.js';

export type Cifar10Split = 'train' | 'test';

/** The files of each split, in the order they are read. */
export const CIFAR10_FILES: Record<Cifar10Split, string[]> = {
  train: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`),
  test: ['test_batch.bin'],
};

/** Reads and parses one CIFAR-10 .bin file; errors name the file. */
export function readCifar10File(path: string, options: { limit?: number } = {}): ImageDataset {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new Error(`Cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  return parseCifar10(bytes, path, options);
}

/**
 * Reads a split from `dir` (the extracted cifar-10-batches-bin folder): data_batch_1..5.bin
 * for 'train', test_batch.bin for 'test'. With `limit`, stops reading files once it has
 * enough records. Images come back as NHWC bytes, 32x32x3.
 */
export function loadCifar10(
  dir: string,
  options: { split: Cifar10Split; limit?: number },
): ImageDataset {
  const { split, limit } = options;
  const files = CIFAR10_FILES[split];
  if (files === undefined) {
    throw new Error(`Unknown CIFAR-10 split '${String(split)}'; expected 'train' or 'test'.`);
  }
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new Error(`CIFAR-10 directory ${dir} does not exist or is not a directory.`);
  }
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) {
    throw new RangeError(`limit must be a non-negative integer, got ${limit}.`);
  }
  const parts: ImageDataset[] = [];
  let count = 0;
  for (const name of files) {
    if (limit !== undefined && count >= limit) break;
    const path = join(dir, name);
    if (!existsSync(path)) {
      throw new Error(
        `CIFAR-10 file ${path} not found (the ${split} split needs ${files.join(', ')}).`,
      );
    }
    const part = readCifar10File(path, { limit: limit === undefined ? undefined : limit - count });
    parts.push(part);
    count += part.count;
  }
  if (parts.length === 1) return parts[0]!;
  const imageBytes = CIFAR10_RECORD_BYTES - 1;
  const images = new Uint8Array(count * imageBytes);
  const labels = new Uint8Array(count);
  let offset = 0;
  for (const part of parts) {
    images.set(part.images, offset * imageBytes);
    labels.set(part.labels, offset);
    offset += part.count;
  }
  return { images, labels, count, height: 32, width: 32, channels: 3 };
}
