/**
 * The resize grad kernels registered for cpu and wasm against the exact transpose of the
 * backend's forward resize (built from one-hot images), for batches of one and several
 * images; where stock TF.js is right they must give its results bit for bit, and where we
 * replace it, stock must really be wrong.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, onBackend } from '../helpers.js';
import {
  isFastKernelRegistered,
  registerFastKernels,
  stockKernel,
} from '../../src/kernels/index.js';
import { randomValues, relativeMaxError, seededRandom } from './reference-loops.js';

registerFastKernels();

type Kind = 'ResizeNearestNeighbor' | 'ResizeBilinear';

interface ResizeCase {
  kind: Kind;
  image: [number, number, number];
  size: [number, number];
  alignCorners: boolean;
  halfPixelCenters: boolean;
}

const GEOMETRIES: Omit<ResizeCase, 'kind'>[] = [
  { image: [4, 4, 2], size: [8, 8], alignCorners: false, halfPixelCenters: false },
  { image: [4, 4, 1], size: [7, 5], alignCorners: true, halfPixelCenters: false },
  { image: [5, 3, 2], size: [3, 7], alignCorners: true, halfPixelCenters: false },
  { image: [5, 6, 1], size: [2, 4], alignCorners: false, halfPixelCenters: false },
  { image: [4, 4, 2], size: [6, 3], alignCorners: false, halfPixelCenters: true },
  { image: [3, 5, 1], size: [8, 9], alignCorners: false, halfPixelCenters: true },
];
const CASES: ResizeCase[] = (['ResizeNearestNeighbor', 'ResizeBilinear'] as const).flatMap((kind) =>
  GEOMETRIES.map((g) => ({ kind, ...g })),
);

const label = (c: ResizeCase, batch: number) =>
  `${c.kind} ${c.image.join('x')} -> ${c.size.join('x')}` +
  `${c.alignCorners ? ', alignCorners' : ''}${c.halfPixelCenters ? ', halfPixelCenters' : ''}, batch ${batch}`;

const attrsOf = (c: ResizeCase) =>
  ({
    alignCorners: c.alignCorners,
    halfPixelCenters: c.halfPixelCenters,
    size: c.size,
  }) as unknown as tf.NamedAttrMap;

/** dx = J^T dy per image, J the forward resize's matrix [pixels in, pixels out]. */
function expectedGrad(c: ResizeCase, dy: tf.Tensor4D): Float32Array {
  return tf.tidy(() => {
    const n = tf.util.sizeFromShape(c.image);
    const oneHots = tf.reshape(tf.eye(n), [n, ...c.image]);
    const forward = tf.engine().runKernel(c.kind, { images: oneHots }, attrsOf(c)) as tf.Tensor;
    const j = tf.reshape(forward, [n, -1]);
    const dyRows = tf.reshape(dy, [dy.shape[0], -1]);
    return tf.matMul(dyRows, j, false, true).dataSync() as Float32Array;
  });
}

function runGrad(
  c: ResizeCase,
  dy: tf.Tensor4D,
  kernel: tf.KernelConfig,
): { values: Float32Array; shape: number[] } {
  const images = tf.zeros([dy.shape[0], ...c.image]);
  const b = tf.backend();
  const info = kernel.kernelFunc({
    inputs: { dy, images },
    backend: b,
    attrs: attrsOf(c),
  }) as tf.TensorInfo;
  const values = Float32Array.from(b.readSync(info.dataId) as Float32Array);
  b.disposeData(info.dataId);
  images.dispose();
  return { values, shape: info.shape };
}

for (const backend of TEST_BACKENDS) {
  test(`resize grad kernels are the transpose of the forward resize on ${backend}`, async () => {
    await onBackend(backend);
    let replacedAndStockWrong = 0;
    let replaced = 0;
    for (const [i, c] of CASES.entries()) {
      const kernelName = `${c.kind}Grad`;
      assert.ok(isFastKernelRegistered(kernelName, backend), kernelName);
      const ours = tf.getKernel(kernelName, backend)!;
      const stock = stockKernel(kernelName, backend)!;
      for (const batch of [1, 3]) {
        const rand = seededRandom(10 * i + batch);
        const outShape: [number, number, number, number] = [batch, ...c.size, c.image[2]];
        const dy = tf.tensor4d(randomValues(rand, tf.util.sizeFromShape(outShape)), outShape);
        const want = expectedGrad(c, dy);
        const before = tf.memory().numTensors;
        const { values: got, shape } = runGrad(c, dy, ours);
        assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
        assert.deepEqual(shape, [batch, ...c.image], `${label(c, batch)}: shape`);
        const err = relativeMaxError(got, want);
        assert.ok(err < 1e-6, `${label(c, batch)}: off by ${err}`);
        const fromStock = runGrad(c, dy, stock);
        const square = c.image[0] === c.image[1];
        if (backend === 'cpu' && c.kind === 'ResizeBilinear' && !square) {
          assert.notDeepEqual(fromStock.shape, shape, "cpu's stock kernel mislabels the shape");
        }
        const stockRight = c.kind === 'ResizeBilinear' || backend !== 'cpu' || batch === 1;
        if (!c.halfPixelCenters && stockRight) {
          assert.deepEqual(
            got,
            fromStock.values,
            `${label(c, batch)}: stock's values, bit for bit`,
          );
        } else {
          replaced++;
          // NaN counts as wrong: cpu's nearest kernel reads past dy for a downsized batch.
          if (!(relativeMaxError(fromStock.values, want) <= 0.1)) replacedAndStockWrong++;
        }
        dy.dispose();
      }
    }
    assert.ok(replaced > 0);
    assert.equal(replacedAndStockWrong, replaced, 'stock is wrong wherever ours replaces it');
  });
}
