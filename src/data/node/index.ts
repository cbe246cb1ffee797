/** The Node-only dataset readers (node:fs, node:zlib). */
export {
  loadFashionMnist,
  loadFashionMnistSlice,
  fashionMnistSliceDir,
  findFullFashionMnist,
  readIdxFile,
  FASHION_MNIST_FILES,
  type FashionMnistSplit,
  type LoadFashionMnistOptions,
} from './fashion-mnist.js';
export { loadCifar10, readCifar10File, CIFAR10_FILES, type Cifar10Split } from './cifar10.js';
export { loadCharText, readTextSource, type TextSource } from './char-text.js';
