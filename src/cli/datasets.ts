/**
 * The datasets the command line trains and analyses on, by name, as tensors:
 *
 * - fashion-mnist-slice: the slice shipped in data/fashion-mnist/ (4000 train, 1000 test);
 * - fashion-mnist: the full set from --data DIR (default: findFullFashionMnist());
 * - cifar10: the binary version from --data DIR (cifar-10-batches-bin);
 * - text: a UTF-8 file, or a directory of them (--data PATH, see readTextSource), cut into
 *   next-character sequences, for 'char-transformer'.
 */
import { existsSync, statSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { datasetToTensors, type CharDataset, type ImageDataset } from '../data/index.js';
import {
  findFullFashionMnist,
  loadCharText,
  loadCifar10,
  loadFashionMnist,
  loadFashionMnistSlice,
} from '../data/node/index.js';
import { CliUsageError } from './errors.js';

export const DATASET_NAMES = ['fashion-mnist-slice', 'fashion-mnist', 'cifar10', 'text'] as const;
export type DatasetName = (typeof DATASET_NAMES)[number];

export interface DatasetOptions {
  dataset: DatasetName;
  /** Directory (images) or file (text); required for cifar10 and text. */
  data?: string;
  /** Keep at most this many training / test examples (the first ones). */
  trainSize?: number;
  testSize?: number;
  /** Characters per sequence for 'text' (default 64). */
  seqLength?: number;
}

export interface Split {
  x: tf.Tensor;
  y: tf.Tensor;
  count: number;
}

export interface LoadedDataset {
  name: DatasetName;
  /** Where it came from, for reports. */
  source: string;
  train: Split;
  test: Split;
  /** Options to build a matching model with modelByName (input shape, classes, ...). */
  modelOptions: Record<string, unknown>;
  classes: number;
  dispose(): void;
}

/** Fraction of a text file's sequences held out for testing. */
const TEXT_TEST_FRACTION = 0.1;

export function loadDataset(options: DatasetOptions): LoadedDataset {
  switch (options.dataset) {
    case 'fashion-mnist-slice':
      if (options.data !== undefined) {
        throw new CliUsageError(
          '--data is not used with --dataset fashion-mnist-slice (it is shipped with the package); use --dataset fashion-mnist --data DIR for the full set.',
        );
      }
      return imageData(
        options,
        'data/fashion-mnist (shipped slice)',
        readImages(() => loadFashionMnistSlice('train', { limit: options.trainSize })),
        readImages(() => loadFashionMnistSlice('test', { limit: options.testSize })),
      );
    case 'fashion-mnist': {
      const dir = options.data ?? findFullFashionMnist();
      if (dir === undefined) {
        throw new CliUsageError(
          'The full Fashion-MNIST was not found: pass --data DIR (a directory with the four IDX files), ' +
            'or set ADAHESSIAN_FASHION_MNIST; also searched ../shared/datasets/fashion-mnist and ' +
            '/usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist).',
        );
      }
      checkDirectory(dir);
      return imageData(
        options,
        dir,
        readImages(() => loadFashionMnist(dir, { split: 'train', limit: options.trainSize })),
        readImages(() => loadFashionMnist(dir, { split: 'test', limit: options.testSize })),
      );
    }
    case 'cifar10': {
      const dir = requireData(options, 'a directory with data_batch_1..5.bin and test_batch.bin');
      checkDirectory(dir);
      return imageData(
        options,
        dir,
        readImages(() => loadCifar10(dir, { split: 'train', limit: options.trainSize })),
        readImages(() => loadCifar10(dir, { split: 'test', limit: options.testSize })),
      );
    }
    case 'text':
      return textData(options);
    default:
      throw new CliUsageError(
        `Unknown dataset '${String(options.dataset)}'; expected one of ${DATASET_NAMES.join(', ')}.`,
      );
  }
}

function requireData(options: DatasetOptions, what: string): string {
  if (options.data === undefined) {
    throw new CliUsageError(`--dataset ${options.dataset} needs --data (${what}).`);
  }
  if (!existsSync(options.data)) {
    throw new CliUsageError(`--data ${options.data} does not exist.`);
  }
  return options.data;
}

function checkDirectory(dir: string): void {
  if (!existsSync(dir)) throw new CliUsageError(`--data ${dir} does not exist.`);
  if (!statSync(dir).isDirectory()) throw new CliUsageError(`--data ${dir} is not a directory.`);
}

/** Reads image files; a missing, truncated or corrupt file is bad --data (one line, exit 2). */
function readImages(read: () => ImageDataset): ImageDataset {
  try {
    return read();
  } catch (e) {
    if (e instanceof CliUsageError) throw e;
    throw new CliUsageError(`--data: ${(e as Error).message}`, { cause: e });
  }
}

function imageData(
  options: DatasetOptions,
  source: string,
  train: ImageDataset,
  test: ImageDataset,
): LoadedDataset {
  checkNotEmpty(options, train.count, test.count);
  const size = (d: ImageDataset) => `${d.height}x${d.width}x${d.channels}`;
  if (size(train) !== size(test)) {
    // A model is built for one input size; the test images would fail after the first epoch.
    throw new CliUsageError(
      `--data ${source}: the training images are ${size(train)} (height x width x channels), the test images ${size(test)}; they must match.`,
    );
  }
  const trainTensors = datasetToTensors(train);
  const testTensors = datasetToTensors(test);
  return {
    name: options.dataset,
    source,
    train: { ...trainTensors, count: train.count },
    test: { ...testTensors, count: test.count },
    modelOptions: { inputShape: [train.height, train.width, train.channels], classes: 10 },
    classes: 10,
    dispose: () => tf.dispose([trainTensors.x, trainTensors.y, testTensors.x, testTensors.y]),
  };
}

function textData(options: DatasetOptions): LoadedDataset {
  const file = requireData(options, 'a UTF-8 text file, or a directory of them');
  const seqLength = options.seqLength ?? 64;
  let all: CharDataset;
  try {
    all = loadCharText(file, seqLength);
  } catch (e) {
    throw new CliUsageError(`--data: ${(e as Error).message}`);
  }
  if (all.vocab.size < 2) {
    throw new CliUsageError(
      `--data ${file}: the text has ${all.vocab.size} distinct character(s); next-character prediction needs at least 2.`,
    );
  }
  const testCount = Math.max(1, Math.floor(all.count * TEXT_TEST_FRACTION));
  const trainCount = all.count - testCount;
  if (trainCount < 1) {
    throw new CliUsageError(
      `--data ${file} gives only ${all.count} sequence(s) of ${seqLength} characters; need at least 2 (use a longer text or a smaller --seq-length).`,
    );
  }
  const take = (from: number, count: number, limit?: number): CharDataset => {
    const n = Math.min(count, limit ?? count);
    return {
      vocab: all.vocab,
      inputs: all.inputs.slice(from * seqLength, (from + n) * seqLength),
      targets: all.targets.slice(from * seqLength, (from + n) * seqLength),
      count: n,
      seqLength,
    };
  };
  const train = take(0, trainCount, options.trainSize);
  const test = take(trainCount, testCount, options.testSize);
  checkNotEmpty(options, train.count, test.count);
  const toTensors = (d: CharDataset): Split => {
    const shape: [number, number] = [d.count, seqLength];
    const x = tf.tensor2d(d.inputs, shape, 'int32');
    const y = tf.tidy(() =>
      tf.oneHot(tf.tensor2d(d.targets, shape, 'int32'), all.vocab.size).toFloat(),
    );
    return { x, y, count: d.count };
  };
  const trainSplit = toTensors(train);
  const testSplit = toTensors(test);
  return {
    name: 'text',
    source: file,
    train: trainSplit,
    test: testSplit,
    modelOptions: { vocabSize: all.vocab.size, contextLength: seqLength },
    classes: all.vocab.size,
    dispose: () => tf.dispose([trainSplit.x, trainSplit.y, testSplit.x, testSplit.y]),
  };
}

/**
 * --train-size and --test-size as given: a size beyond the data would silently train or test on
 * fewer examples than the command line says, so it is refused in one line (as the demo does),
 * after disposing `data`.
 */
export function refuseLargerSizes(
  asked: { trainSize?: number; testSize?: number },
  data: LoadedDataset,
): void {
  const unit = data.name === 'text' ? 'sequences' : 'examples';
  for (const [option, size, split, noun] of [
    ['--train-size', asked.trainSize, data.train, 'training'],
    ['--test-size', asked.testSize, data.test, 'test'],
  ] as const) {
    if (size !== undefined && split.count < size) {
      data.dispose();
      throw new CliUsageError(
        `${option} ${size}: ${data.source} has ${split.count} ${noun} ${unit} (--dataset ${data.name}); give at most ${split.count}, or leave it out to use them all.`,
      );
    }
  }
}

function checkNotEmpty(options: DatasetOptions, train: number, test: number): void {
  if (train < 1 || test < 1) {
    throw new CliUsageError(
      `--dataset ${options.dataset}: ${train} training and ${test} test examples; both must be at least 1.`,
    );
  }
}
