/**
 * Micro-batches (a batch's product as the size-weighted sum of its micro-batches' products)
 * and the model left as the analysis found it (batch norm's moving statistics untouched).
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { HessianAnalyzer, type LabelLoss } from '../../src/analysis/index.js';
import {
  autoMicroBatchSize,
  microBatchRows,
  outputFloatsPerExample,
} from '../../src/analysis/micro-batch.js';
import { meanSquaredError, softmaxCrossEntropy } from '../../src/losses.js';
import { buildResNet20, buildSmallCnn } from '../../src/models/index.js';
import { maxAbs, maxAbsDiff, onBackend, TEST_BACKENDS } from '../helpers.js';
import { smallMlp } from './fixtures.js';

/** A ResNet-20 in miniature: the real architecture (batch norm, shortcuts), few weights. */
function tinyResNet(seed: number): tf.LayersModel {
  return buildResNet20({ inputShape: [8, 8, 1], classes: 3, width: 4, blocksPerStage: 1, seed });
}

/** Wraps a loss so that it records how many rows each forward pass saw. */
function countingLoss(loss: LabelLoss, rows: number[]): LabelLoss {
  return (labels, predictions) => {
    rows.push(predictions.shape[0]!);
    return loss(labels, predictions);
  };
}

async function products(analyzer: HessianAnalyzer, vectors: tf.Tensor2D): Promise<tf.Tensor2D> {
  return analyzer.operator.matmat(vectors);
}

describe('micro-batch sizes', () => {
  before(() => onBackend(TEST_BACKENDS[0]!));

  it('splits a batch as evenly as possible, no part above the limit', () => {
    assert.deepEqual(microBatchRows(10, 4), [4, 3, 3]);
    assert.deepEqual(microBatchRows(128, 20), [19, 19, 18, 18, 18, 18, 18]);
    assert.deepEqual(microBatchRows(12, 4), [4, 4, 4]);
    assert.deepEqual(microBatchRows(5, 1), [1, 1, 1, 1, 1]);
    assert.deepEqual(microBatchRows(3, 8), [3]);
  });

  it('auto: ResNet-20 at the default batch of 128 is split on wasm; the small CNN at 512 is not', () => {
    const resnet = buildResNet20({ seed: 1 });
    const cnn = buildSmallCnn({ seed: 1 });
    const resnetMicro = autoMicroBatchSize(resnet, 'wasm');
    assert.ok(
      outputFloatsPerExample(resnet) > 600_000,
      'ResNet-20 keeps ~0.67M floats per example',
    );
    assert.ok(resnetMicro >= 16 && resnetMicro < 128, `ResNet-20 micro-batch ${resnetMicro}`);
    assert.ok(autoMicroBatchSize(cnn, 'wasm') >= 512, 'the small CNN fits batch 512 whole');
    assert.ok(autoMicroBatchSize(resnet, 'cpu') >= resnetMicro, 'cpu has no 4 GB heap');
    resnet.dispose();
    cnn.dispose();
  });
});

for (const backend of TEST_BACKENDS) {
  describe(`HessianAnalyzer micro-batches and model state (${backend})`, () => {
    before(() => onBackend(backend));

    it('a product over micro-batches equals the one-batch product (MLP and a batch-norm ResNet)', async () => {
      const cases = [
        {
          name: 'tanh MLP',
          model: smallMlp(61) as tf.LayersModel,
          x: tf.randomNormal([10, 3], 0, 1, 'float32', 1),
          y: tf.randomNormal([10, 2], 0, 1, 'float32', 2),
          loss: meanSquaredError as LabelLoss,
        },
        {
          name: 'tiny ResNet',
          model: tinyResNet(62),
          x: tf.randomNormal([10, 8, 8, 1], 0, 1, 'float32', 3),
          y: tf.tidy(() => tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1, 2, 0], 'int32'), 3)),
          loss: softmaxCrossEntropy as LabelLoss,
        },
      ];
      for (const c of cases) {
        const start = tf.memory().numTensors;
        const wholeRows: number[] = [];
        const microRows: number[] = [];
        const whole = new HessianAnalyzer({
          model: c.model,
          loss: countingLoss(c.loss, wholeRows),
          data: { x: c.x, y: c.y },
          microBatchSize: 10,
        });
        const micro = new HessianAnalyzer({
          model: c.model,
          loss: countingLoss(c.loss, microRows),
          data: { x: c.x, y: c.y },
          microBatchSize: 4,
        });
        const vectors = tf.randomNormal([3, whole.size], 0, 1, 'float32', 4) as tf.Tensor2D;
        const a = await products(whole, vectors);
        const b = await products(micro, vectors);
        assert.deepEqual(wholeRows, [10], `${c.name}: one forward pass of 10 rows`);
        assert.deepEqual(microRows, [4, 3, 3], `${c.name}: micro-batches of 4, 3 and 3 rows`);
        const scale = maxAbs(a);
        assert.ok(scale > 0, `${c.name}: a non-zero product`);
        const diff = maxAbsDiff(a, b);
        assert.ok(diff <= 1e-5 * scale, `${c.name}: max diff ${diff} vs scale ${scale}`);
        const [lossWhole, lossMicro] = [await whole.loss(), await micro.loss()];
        assert.ok(Math.abs(lossWhole - lossMicro) <= 1e-6 * Math.abs(lossWhole), 'same mean loss');
        tf.dispose([vectors, a, b]);
        assert.equal(tf.memory().numTensors, start, `${c.name}: no tensors leak`);
        tf.dispose([c.x, c.y]);
        c.model.dispose();
      }
    });

    it('over a dataset of uneven batches, micro-batches give the same product', async () => {
      const model = smallMlp(63);
      const x = tf.randomNormal([12, 3], 0, 1, 'float32', 5);
      const y = tf.randomNormal([12, 2], 0, 1, 'float32', 6);
      const batches = [
        { x: x.slice(0, 7), y: y.slice(0, 7) },
        { x: x.slice(7, 5), y: y.slice(7, 5) },
      ];
      const rows: number[] = [];
      const whole = new HessianAnalyzer({ model, loss: meanSquaredError, data: { x, y } });
      const micro = new HessianAnalyzer({
        model,
        loss: countingLoss(meanSquaredError, rows),
        data: batches,
        microBatchSize: 3,
      });
      const vectors = tf.randomNormal([2, whole.size], 0, 1, 'float32', 7) as tf.Tensor2D;
      const a = await products(whole, vectors);
      const b = await products(micro, vectors);
      assert.deepEqual(rows, [3, 2, 2, 3, 2]);
      assert.ok(maxAbsDiff(a, b) <= 1e-5 * maxAbs(a), 'the Hessian of the mean over 12 examples');
      tf.dispose([vectors, a, b, x, y, ...batches.flatMap((bt) => [bt.x, bt.y])]);
      model.dispose();
    });

    for (const training of [false, true]) {
      it(`leaves a batch-norm model exactly as it found it (training: ${training})`, async () => {
        const model = tinyResNet(64);
        const x = tf.randomNormal([6, 8, 8, 1], 0, 1, 'float32', 8);
        const y = tf.tidy(() => tf.oneHot(tf.tensor1d([0, 1, 2, 2, 1, 0], 'int32'), 3));
        const probe = tf.randomNormal([4, 8, 8, 1], 2, 3, 'float32', 9);
        const outputsBefore = tf.tidy(() => (model.predict(probe) as tf.Tensor).dataSync());
        const weightsBefore = model.weights.map((w) => w.read().dataSync().slice());
        assert.ok(model.nonTrainableWeights.length > 0, 'the model has moving statistics');
        const start = tf.memory().numTensors;
        const analyzer = new HessianAnalyzer({
          model,
          loss: softmaxCrossEntropy,
          data: { x, y },
          training,
          microBatchSize: training ? undefined : 4,
        });
        const top = await analyzer.topEigenvalues({ topN: 1, maxIter: 3 });
        tf.dispose(top.eigenvectors.flat());
        await analyzer.trace({ maxIter: 2 });
        await analyzer.loss();
        assert.equal(tf.memory().numTensors, start, 'no tensors leak');
        const outputsAfter = tf.tidy(() => (model.predict(probe) as tf.Tensor).dataSync());
        assert.deepEqual(outputsAfter, outputsBefore, 'inference outputs bit-identical');
        model.weights.forEach((w, i) =>
          assert.deepEqual(w.read().dataSync(), weightsBefore[i], `${w.name} unchanged`),
        );
        tf.dispose([x, y, probe]);
        model.dispose();
      });
    }

    it('rejects a bad microBatchSize with a clear error', () => {
      const model = smallMlp(65);
      const x = tf.randomNormal([4, 3]);
      const y = tf.randomNormal([4, 2]);
      for (const bad of [0, 2.5, -1, 'big']) {
        assert.throws(
          () =>
            new HessianAnalyzer({
              model,
              loss: meanSquaredError,
              data: { x, y },
              microBatchSize: bad as never,
            }),
          /microBatchSize must be a positive integer or 'auto', got/,
        );
      }
      tf.dispose([x, y]);
      model.dispose();
    });
  });
}
