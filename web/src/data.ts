/**
 * The Fashion-MNIST slice shipped in data/fashion-mnist/, fetched as assets of the site and
 * parsed with the library's IDX parser. Browser and worker only (fetch, DecompressionStream).
 */
import { imageDatasetFromIdx, isGzip, parseIdx, type ImageDataset } from '../../src/index.js';
import trainImagesUrl from '../../data/fashion-mnist/train-images-idx3-ubyte.gz?url';
import trainLabelsUrl from '../../data/fashion-mnist/train-labels-idx1-ubyte.gz?url';
import testImagesUrl from '../../data/fashion-mnist/t10k-images-idx3-ubyte.gz?url';
import testLabelsUrl from '../../data/fashion-mnist/t10k-labels-idx1-ubyte.gz?url';

async function fetchIdx(url: string, name: string) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`Could not load ${name}: HTTP ${response.status}.`);
  let bytes = new Uint8Array(await response.arrayBuffer());
  // A server may already have undone the gzip (Content-Encoding); only inflate what is gzip.
  if (isGzip(bytes)) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
    bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  }
  return parseIdx(bytes, name);
}

async function loadSplit(
  imagesUrl: string,
  labelsUrl: string,
  name: string,
): Promise<ImageDataset> {
  const [images, labels] = await Promise.all([
    fetchIdx(imagesUrl, `${name} images`),
    fetchIdx(labelsUrl, `${name} labels`),
  ]);
  return imageDatasetFromIdx(images, labels, {
    imagesSource: `${name} images`,
    labelsSource: `${name} labels`,
  });
}

export async function loadFashionMnistSlice(): Promise<{
  train: ImageDataset;
  test: ImageDataset;
}> {
  const [train, test] = await Promise.all([
    loadSplit(trainImagesUrl, trainLabelsUrl, 'Fashion-MNIST training'),
    loadSplit(testImagesUrl, testLabelsUrl, 'Fashion-MNIST test'),
  ]);
  return { train, test };
}
