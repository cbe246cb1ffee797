/**
 * Node-only Fashion-MNIST readers: the IDX files from a directory (gzipped or not), and
 * the slice committed under data/fashion-mnist/ in this package.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { isGzip, parseIdx, IdxFormatError, type IdxArray } from '../idx.js';
import { imageDatasetFromIdx, type ImageDataset } from '../image-dataset.js';

export type FashionMnistSplit = 'train' | 'test';

export interface LoadFashionMnistOptions {
  split: FashionMnistSplit;
  /** Keep at most the first `limit` records (default: all). */
  limit?: number;
}

/** The IDX file names (without .gz) of each split, as Zalando and MNIST name them. */
export const FASHION_MNIST_FILES: Record<FashionMnistSplit, { images: string; labels: string }> =
  {
    train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
    test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
  };

/**
 * Reads one split from `dir`, which holds the four IDX files with or without .gz
 * (the uncompressed file is used when both exist). Errors name the file at fault.
 */
export function loadFashionMnist(dir: string, options: LoadFashionMnistOptions): ImageDataset {
  const { split, limit } = options;
  const names = FASHION_MNIST_FILES[split];
  if (names === undefined) {
    throw new Error(`Unknown Fashion-MNIST split '${String(split)}'; expected 'train' or 'test'.`);
  }
  if (!existsSync(dir)) {
    throw new Error(`Fashion-MNIST directory ${dir} does not exist.`);
  }
  if (!statSync(dir).isDirectory()) {
    throw new Error(`Fashion-MNIST path ${dir} is not a directory.`);
  }
  const imagesPath = findIdxFile(dir, names.images);
  const labelsPath = findIdxFile(dir, names.labels);
  return imageDatasetFromIdx(readIdxFile(imagesPath), readIdxFile(labelsPath), {
    limit,
    imagesSource: imagesPath,
    labelsSource: labelsPath,
  });
}

/** Reads and parses an IDX file, decompressing it first when it is gzipped. */
export function readIdxFile(path: string): IdxArray {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new Error(`Cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  if (isGzip(bytes)) {
    try {
      bytes = gunzipSync(bytes);
    } catch (error) {
      throw new IdxFormatError(
        `${path}: gzip data is corrupt or truncated (${(error as Error).message}).`,
      );
    }
  }
  return parseIdx(bytes, path);
}

function findIdxFile(dir: string, name: string): string {
  for (const candidate of [name, `${name}.gz`]) {
    const path = join(dir, candidate);
    if (existsSync(path)) return path;
  }
  throw new Error(`Fashion-MNIST file ${join(dir, name)}[.gz] not found in ${dir}.`);
}

/** The directory of the Fashion-MNIST slice shipped with this package. */
export function fashionMnistSliceDir(): string {
  // Walk up from this module to the package root: the source tree (src/data/node) and the
  // build (dist/src/data/node) sit at different depths, and an installed package is elsewhere.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'data', 'fashion-mnist');
    if (isOurPackageRoot(dir) && existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error(
    'Cannot find the Fashion-MNIST slice (data/fashion-mnist/) above ' +
      `${dirname(fileURLToPath(import.meta.url))}; is the package's data/ folder missing?`,
  );
}

function isOurPackageRoot(dir: string): boolean {
  try {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string };
    return pkg.name === 'adahessian';
  } catch {
    return false;
  }
}

/**
 * The slice of Fashion-MNIST shipped in data/fashion-mnist/: the first 4000 training and the
 * first 1000 test records, enough for tests and demos without downloading anything.
 */
export function loadFashionMnistSlice(
  split: FashionMnistSplit,
  options: { limit?: number } = {},
): ImageDataset {
  return loadFashionMnist(fashionMnistSliceDir(), { split, limit: options.limit });
}

/**
 * Where the full dataset is, if anywhere: $ADAHESSIAN_FASHION_MNIST, then
 * ../shared/datasets/fashion-mnist (relative to the working directory, as developers and CI
 * have it), then /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist).
 */
export function findFullFashionMnist(): string | undefined {
  const candidates = [
    process.env.ADAHESSIAN_FASHION_MNIST,
    resolve('../shared/datasets/fashion-mnist'),
    '/usr/share/datasets/fashion-mnist',
  ];
  return candidates.find((dir): dir is string => !!dir && holdsFashionMnist(dir));
}

function holdsFashionMnist(dir: string): boolean {
  const names = Object.values(FASHION_MNIST_FILES).flatMap((f) => [f.images, f.labels]);
  return names.every((n) => existsSync(join(dir, n)) || existsSync(join(dir, `${n}.gz`)));
}
