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
