import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, onBackend } from '../helpers.js';
import { registerFastKernels } from '../../src/kernels/index.js';

registerFastKernels();

/** Runs `body` many times and checks that neither engine tensors nor backend data ids grow. */
function assertNoLeak(label: string, body: () => void, repeats = 30): void {
  body(); // warm-up: lazily created state is not a leak
  const tensors = tf.memory().numTensors;
  const dataIds = tf.backend().numDataIds();
  for (let i = 0; i < repeats; i++) body();
  assert.equal(tf.memory().numTensors, tensors, `${label}: engine tensors grew`);
  assert.equal(tf.backend().numDataIds(), dataIds, `${label}: backend data ids grew`);
}

const run = (name: string, inputs: tf.NamedTensorMap, attrs: Record<string, unknown>) => () =>
  (tf.engine().runKernel(name, inputs, attrs as tf.NamedAttrMap) as tf.Tensor).dispose();

for (const backend of TEST_BACKENDS) {
  test(`${backend}: the kernels leave no tensors or backend data behind`, async () => {
    await onBackend(backend);
    const x = tf.randomNormal([2, 7, 9, 3]);
    const dySame2 = tf.randomNormal([2, 4, 5, 4]);
    const dyDepthwise = tf.randomNormal([2, 4, 5, 6]);
    const filter = tf.randomNormal([3, 3, 3, 2]);
    const filter4 = tf.randomNormal([3, 3, 3, 4]);
    const bigFilter = tf.randomNormal([3, 3, 32, 2]);
    const big = tf.randomNormal([14, 48, 48, 32]);
    const bigDy = tf.randomNormal([14, 48, 48, 2]);
    const table = tf.randomNormal([12, 5]);
    const ids = tf.tensor1d([3, 1, 3, 11, 0], 'int32');
    const rows = tf.randomNormal([5, 5]);
    const pooled = tf.maxPool(x as tf.Tensor4D, 2, 2, 'same');
    const conv = { strides: 2, pad: 'same', dataFormat: 'NHWC' };
    assertNoLeak(
      'Conv2DBackpropFilter',
      run('Conv2DBackpropFilter', { x, dy: dySame2 }, { ...conv, filterShape: [3, 3, 3, 4] }),
    );
    assertNoLeak(
      'Conv2DBackpropFilter (chunked batch)',
      run(
        'Conv2DBackpropFilter',
        { x: big, dy: bigDy },
        { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 32, 2] },
      ),
      3,
    );
    assertNoLeak(
      'Conv2DBackpropInput',
      run(
        'Conv2DBackpropInput',
        { dy: dySame2, filter: filter4 },
        { ...conv, inputShape: [2, 7, 9, 3] },
      ),
    );
    assertNoLeak(
      'Conv2DBackpropInput (chunked batch)',
      run(
        'Conv2DBackpropInput',
        { dy: bigDy, filter: bigFilter },
        { strides: 1, pad: 'same', dataFormat: 'NHWC', inputShape: [14, 48, 48, 32] },
      ),
      3,
    );
    assertNoLeak(
      'DepthwiseConv2dNativeBackpropFilter',
      run(
        'DepthwiseConv2dNativeBackpropFilter',
        { x, dy: dyDepthwise },
        { ...conv, dilations: 1, filterShape: [3, 3, 3, 2] },
      ),
    );
    assertNoLeak(
      'DepthwiseConv2dNativeBackpropInput',
      run(
        'DepthwiseConv2dNativeBackpropInput',
        { dy: dyDepthwise, filter },
        { ...conv, dilations: 1, inputShape: [2, 7, 9, 3] },
      ),
    );
    assertNoLeak(
      'UnsortedSegmentSum',
      run('UnsortedSegmentSum', { x: rows, segmentIds: ids }, { numSegments: 12 }),
    );
    assertNoLeak(
      'MaxPoolGrad',
      run(
        'MaxPoolGrad',
        { dy: tf.onesLike(pooled), input: x, output: pooled },
        { filterSize: 2, strides: 2, pad: 'same' },
      ),
    );
    assertNoLeak('gradients through conv2d, depthwiseConv2d, gather, maxPool', () => {
      tf.tidy(() => {
        const w = tf.randomNormal([3, 3, 3, 4]) as tf.Tensor4D;
        const dw = tf.randomNormal([3, 3, 3, 2]) as tf.Tensor4D;
        const loss = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, t: tf.Tensor) =>
          tf.addN([
            tf.sum(
              tf.maxPool(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'), 2, 2, 'same'),
            ),
            tf.sum(tf.square(tf.depthwiseConv2d(a as tf.Tensor4D, c as tf.Tensor4D, 2, 'same'))),
            tf.sum(tf.square(tf.gather(t, ids))),
          ]);
        tf.grads(loss)([x, w, dw, table]);
      });
    });
    tf.dispose([
      x,
      dySame2,
      dyDepthwise,
      filter,
      filter4,
      bigFilter,
      big,
      bigDy,
      table,
      ids,
      rows,
      pooled,
    ]);
  });
}

for (const backend of TEST_BACKENDS) {
  test(`${backend}: the conv3d backprop and resize grad kernels leave nothing behind`, async () => {
    await onBackend(backend);
    const x5 = tf.randomNormal([2, 5, 5, 5, 2]);
    const f5 = tf.randomNormal([3, 3, 3, 2, 3]);
    const dy5 = tf.randomNormal([2, 3, 3, 3, 3]);
    const conv3 = { strides: 2, pad: 'same' };
    assertNoLeak(
      'Conv3DBackpropInputV2',
      run('Conv3DBackpropInputV2', { dy: dy5, filter: f5 }, { ...conv3, inputShape: x5.shape }),
    );
    assertNoLeak(
      'Conv3DBackpropFilterV2',
      run('Conv3DBackpropFilterV2', { x: x5, dy: dy5 }, { ...conv3, filterShape: f5.shape }),
    );
    const images = tf.zeros([3, 4, 5, 2]);
    const dy = tf.randomNormal([3, 8, 7, 2]);
    for (const kernel of ['ResizeNearestNeighborGrad', 'ResizeBilinearGrad']) {
      // halfPixelCenters: ours everywhere; without it, stock's (relabelled) on most.
      for (const halfPixelCenters of [true, false]) {
        assertNoLeak(
          `${kernel}, halfPixelCenters ${halfPixelCenters}`,
          run(kernel, { dy, images }, { alignCorners: false, halfPixelCenters, size: [8, 7] }),
        );
      }
    }
    assertNoLeak('gradients through conv3d and the resizes', () => {
      tf.tidy(() => {
        const loss = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
          tf.addN([
            tf.sum(tf.square(tf.conv3d(a as tf.Tensor5D, b as tf.Tensor5D, 2, 'same'))),
            tf.sum(tf.square(tf.image.resizeBilinear(c as tf.Tensor4D, [7, 9], false, true))),
            tf.sum(tf.square(tf.image.resizeNearestNeighbor(c as tf.Tensor4D, [8, 10]))),
          ]);
        tf.grads(loss)([x5, f5, images]);
      });
    });
    tf.dispose([x5, f5, dy5, images, dy]);
  });
}
