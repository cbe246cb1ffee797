/**
 * loadModel (what `analyze` loads) builds our compact-gradient layers where a saved file names
 * their stock classes: a saved char transformer differentiates as the trained one did (the same
 * logits and Hessian-vector products), within float32 rounding of the stock layers' products,
 * while tf.serialization's map, which users' own tf.loadLayersModel reads, stays stock.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  buildCharTransformer,
  buildResNet20,
  buildSmallCnn,
  CompactGradientDense,
  CompactLayerNormalization,
  gradAndHvp,
  softmaxCrossEntropy,
} from '../../src/index.js';
import { ResNetBatchNormalization } from '../../src/models/resnet-batch-norm.js';
import { loadModel, saveModel } from '../../src/cli/model-io.js';
import { maxAbs, maxAbsDiff, onBackend } from '../helpers.js';
import { tempDir } from './helpers.js';

const TINY = { vocabSize: 7, contextLength: 5, dModel: 8, heads: 2, layers: 1, ffDim: 12 };

function relDiff(a: tf.Tensor, b: tf.Tensor): number {
  return maxAbsDiff(a, b) / Math.max(maxAbs(b), 1e-30);
}

function bytesOf(t: tf.Tensor): Buffer {
  return Buffer.from((t.dataSync() as Float32Array).buffer);
}

async function saved(model: tf.LayersModel): Promise<string> {
  const dir = tempDir('adahessian-model-io-');
  await saveModel(model, dir);
  return dir;
}

/** Loss, gradient and H v of the model's loss on a fixed batch, as analyze's products take it. */
function products(model: tf.LayersModel, ids: tf.Tensor, labels: tf.Tensor, vector: tf.Tensor[]) {
  return gradAndHvp(
    () => softmaxCrossEntropy(labels, model.apply(ids, { training: false }) as tf.Tensor),
    model.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val),
    vector,
  );
}

describe('loadModel builds the compact-gradient layers', () => {
  before(async () => onBackend('cpu'));

  it('a saved char transformer: compact classes, the built logits and H v, stock H v to rounding', async () => {
    const built = buildCharTransformer({ ...TINY, seed: 3 });
    const dir = await saved(built);
    const stockMap = { ...tf.serialization.SerializationMap.getMap().classNameMap };
    const before = tf.memory().numTensors;
    const { model } = await loadModel(dir);
    const { model: stock } = await loadModel(dir, { stockLayers: true });
    for (const name of ['block1_ln1', 'block1_ln2', 'final_ln']) {
      assert.ok(model.getLayer(name) instanceof CompactLayerNormalization, name);
      assert.equal(model.getLayer(name).getClassName(), 'LayerNormalization');
      assert.ok(!(stock.getLayer(name) instanceof CompactLayerNormalization), `stock ${name}`);
    }
    assert.ok(model.getLayer('block1_mlp_hidden') instanceof CompactGradientDense);
    assert.ok(!(stock.getLayer('block1_mlp_hidden') instanceof CompactGradientDense));
    // Users' own loads still get the stock classes: the map is the one before.
    const map = tf.serialization.SerializationMap.getMap().classNameMap;
    for (const name of ['LayerNormalization', 'Dense', 'BatchNormalization']) {
      assert.equal(map[name], stockMap[name], `tf.serialization's ${name} replaced`);
    }

    const ids = tf.tensor2d(
      [
        [0, 1, 2, 3, 4],
        [6, 6, 1, 0, 2],
      ],
      undefined,
      'int32',
    );
    const labels = tf.tidy(() =>
      tf.oneHot(tf.tensor2d([1, 2, 3, 4, 5, 6, 1, 0, 2, 3], [2, 5], 'int32'), 7).toFloat(),
    );
    const vector = model.trainableWeights.map((w, i) =>
      tf.randomNormal(w.shape as number[], 0, 1, 'float32', 30 + i),
    );
    // The same classes and weights as the built model: the same bits.
    const [ours, theirs] = [model, built].map((m) => m.predict(ids) as tf.Tensor);
    assert.ok(bytesOf(ours!).equals(bytesOf(theirs!)), 'logits differ from the built model');
    const loaded = products(model, ids, labels, vector);
    const trained = products(built, ids, labels, vector);
    const stockProducts = products(stock, ids, labels, vector);
    model.trainableWeights.forEach((w, i) => {
      assert.ok(bytesOf(loaded.hvp[i]!).equals(bytesOf(trained.hvp[i]!)), `H v of ${w.name}`);
      // The keys' bias has a zero gradient (softmax ignores a constant per row): rounding only.
      if (w.name.includes('key_bias')) return;
      const h = relDiff(loaded.hvp[i]!, stockProducts.hvp[i]!);
      assert.ok(h < 1e-4, `H v of ${w.name} against the stock layers': ${h}`);
    });
    tf.dispose([ours!, theirs!]);
    for (const p of [loaded, trained, stockProducts]) tf.dispose([p.loss, ...p.grads, ...p.hvp]);
    tf.dispose([ids, labels, ...vector]);
    model.dispose();
    stock.dispose();
    assert.equal(tf.memory().numTensors, before, 'tensors left by the loads or products');
    built.dispose();
  });

  it("ResNet-20's batch norm loads as ResNetBatchNormalization, the stock logits in inference", async () => {
    const built = buildResNet20({ seed: 2, inputShape: [8, 8, 3], width: 4 });
    const dir = await saved(built);
    const { model } = await loadModel(dir);
    const { model: stock } = await loadModel(dir, { stockLayers: true });
    const norms = model.layers.filter((l) => l.getClassName() === 'BatchNormalization');
    assert.ok(norms.length > 0 && norms.every((l) => l instanceof ResNetBatchNormalization));
    assert.ok(!stock.layers.some((l) => l instanceof ResNetBatchNormalization));
    const x = tf.randomNormal([2, 8, 8, 3], 0, 1, 'float32', 5);
    const [a, b] = [model, stock].map((m) => m.predict(x) as tf.Tensor);
    assert.ok(bytesOf(a!).equals(bytesOf(b!)), 'inference logits differ from the stock layers');
    tf.dispose([x, a!, b!]);
    for (const m of [model, stock, built]) m.dispose();
  });

  it('a Sequential model (no such layers) loads as before: stock classes, its weights', async () => {
    const built = buildSmallCnn({ seed: 1 });
    const dir = await saved(built);
    const { model } = await loadModel(dir);
    assert.equal(model.getClassName(), 'Sequential');
    assert.ok(!model.layers.some((l) => l instanceof CompactGradientDense));
    const weights = (m: tf.LayersModel) => Buffer.concat(m.getWeights().map(bytesOf));
    assert.ok(weights(model).equals(weights(built)));
    const x = tf.randomNormal([2, 28, 28, 1], 0, 1, 'float32', 6);
    const [a, b] = [model, built].map((m) => m.predict(x) as tf.Tensor);
    assert.ok(bytesOf(a!).equals(bytesOf(b!)));
    tf.dispose([x, a!, b!]);
    model.dispose();
    built.dispose();
  });
});
