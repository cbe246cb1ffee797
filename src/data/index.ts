/** Browser-safe dataset code: format parsers and tensor helpers (no Node built-ins). */
export { parseIdx, encodeIdx, isGzip, IdxFormatError, IDX_UNSIGNED_BYTE, type IdxArray } from './idx.js';
export {
  imageDatasetFromIdx,
  classCounts,
  FASHION_MNIST_CLASSES,
  type ImageDataset,
  type ImageDatasetOptions,
} from './image-dataset.js';
export {
  toImageTensors,
  datasetToTensors,
  batches,
  batchCount,
  type ImageTensors,
  type ImageTensorOptions,
  type Batch,
  type BatchOptions,
} from './tensors.js';
export { seededPermutation, mulberry32 } from './shuffle.js';
export {
  parseCifar10,
  Cifar10FormatError,
  CIFAR10_CLASSES,
  CIFAR10_RECORD_BYTES,
  CIFAR10_IMAGE_BYTES,
} from './cifar10.js';
export {
  CharVocabulary,
  charDataset,
  charTensors,
  type CharDataset,
  type CharDatasetOptions,
} from './char-text.js';
