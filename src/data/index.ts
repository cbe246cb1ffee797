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
  batches,
  batchCount,
  type ImageTensors,
  type Batch,
  type BatchOptions,
} from './tensors.js';
export { seededPermutation, mulberry32 } from './shuffle.js';
