/**
 * Real training, small enough for CI: the small CNN on 320 Fashion-MNIST training images,
 * through model.fit with AdaHessian at its defaults. The longer run belongs to the CLI.
 * Runs on wasm when it is among the test backends (about 10x faster than cpu here).
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { AdaHessian, buildSmallCnn, softmaxCrossEntropy, toImageTensors } from '../../src/index.js';
import { loadFashionMnistSlice } from '../../src/data/node/fashion-mnist.js';
import { onBackend, TEST_BACKENDS } from '../helpers.js';

const backend = TEST_BACKENDS.includes('wasm') ? 'wasm' : TEST_BACKENDS[0]!;

describe(`AdaHessian trains the small CNN on Fashion-MNIST (${backend})`, () => {
  before(() => onBackend(backend));

  it('the training loss falls over 3 epochs of 320 images (30 steps of 32)', async (t) => {
    const ds = loadFashionMnistSlice('train', { limit: 320 });
    const { x, y } = toImageTensors(ds.images, ds.labels, ds.count, ds.height, ds.width);
    const model = buildSmallCnn({ seed: 1 });
    const optimizer = new AdaHessian({ seed: 1 });
    model.compile({ optimizer, loss: softmaxCrossEntropy, metrics: ['accuracy'] });
    const lossOnSlice = () =>
      tf.tidy(() => softmaxCrossEntropy(y, model.predict(x) as tf.Tensor).dataSync()[0]!);
    const before = lossOnSlice();
    const tensorsBefore = tf.memory().numTensors;
    const history = await model.fit(x, y, { epochs: 3, batchSize: 32, verbose: 0, shuffle: false });
    const after = lossOnSlice();
    const perEpoch = history.history.loss as number[];
    const accuracy = history.history.acc as number[];
    t.diagnostic(
      `loss on the 320 images ${before.toFixed(3)} -> ${after.toFixed(3)}; per epoch ${perEpoch.map((l) => l.toFixed(3))}; ` +
        `accuracy per epoch ${accuracy.map((a) => a.toFixed(3))}`,
    );
    assert.equal(optimizer.iterations, 30);
    assert.equal(optimizer.hessianUpdateCount, 30);
    assert.ok(after < 0.6 * before, `loss ${before} -> ${after}`);
    assert.ok(perEpoch[2]! < perEpoch[0]!, `per-epoch loss ${perEpoch}`);
    // The optimizer's state (m and v for the 8 weight tensors) is all that stays behind.
    assert.equal(tf.memory().numTensors - tensorsBefore, 2 * model.trainableWeights.length);
    tf.dispose([x, y]);
    model.dispose();
    optimizer.dispose();
  });
});
