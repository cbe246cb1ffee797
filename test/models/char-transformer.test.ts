/**
 * The character transformer: shapes and parameter counts by hand, causal masking, seeds,
 * options, the custom layers through model.save / tf.loadLayersModel, training with
 * AdaHessian through model.fit on a tiny text, and its second-order coverage case.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  AdaHessian,
  buildCharTransformer,
  CausalSelfAttention,
  charDataset,
  charTensors,
  modelByName,
  softmaxCrossEntropy,
} from '../../src/index.js';
import { modelCases } from '../../src/autodiff/cases/models.js';
import { runCase } from '../../src/autodiff/check.js';
import { onBackend, TEST_BACKENDS } from '../helpers.js';
import { assertOneHvpRuns } from './hvp-smoke.js';

/** Trainable weights by hand: embeddings, per block LN + attention + MLP, final LN, head. */
function transformerCount(o: {
  vocabSize: number;
  contextLength: number;
  dModel: number;
  layers: number;
  ffDim: number;
}): number {
  const { vocabSize: v, contextLength: t, dModel: d, layers, ffDim: f } = o;
  const layerNorm = 2 * d; // gamma, beta
  const attention = 4 * (d * d + d); // Wq, Wk, Wv, Wo and their biases
  const mlp = d * f + f + f * d + d;
  return v * d + t * d + layers * (2 * layerNorm + attention + mlp) + layerNorm + d * v + v;
}

const TINY = { vocabSize: 7, contextLength: 6, dModel: 8, heads: 2, layers: 1, ffDim: 12 };

function weightValues(model: tf.LayersModel): Float32Array[] {
  return model.getWeights().map((w) => w.dataSync() as Float32Array);
}

describe('char-transformer: structure', () => {
  before(() => onBackend('cpu'));

  it('defaults (dModel 64, 2 heads, 2 blocks, ffDim 128): logits [batch, T, vocab], hand-counted weights', () => {
    const model = buildCharTransformer({ vocabSize: 65, contextLength: 32, seed: 1 });
    const expected = transformerCount({
      vocabSize: 65,
      contextLength: 32,
      dModel: 64,
      layers: 2,
      ffDim: 128,
    });
    assert.equal(expected, 77505);
    assert.equal(model.countParams(), expected);
    assert.equal(model.trainableWeights.length, model.weights.length, 'no non-trainable weights');
    const attention = model.layers.filter((l) => l instanceof CausalSelfAttention);
    assert.equal(attention.length, 2);
    assert.equal((attention[0] as CausalSelfAttention).heads, 2);
    const ids = tf.tensor2d(
      Array.from({ length: 3 * 32 }, (_, i) => (i * 7) % 65),
      [3, 32],
      'int32',
    );
    const logits = model.predict(ids) as tf.Tensor;
    assert.deepEqual(logits.shape, [3, 32, 65]);
    assert.ok(logits.dataSync().every(Number.isFinite));
    tf.dispose([ids, logits]);
    model.dispose();
  });

  it('honours dModel, heads, layers and ffDim', () => {
    const options = { vocabSize: 11, contextLength: 4, dModel: 12, heads: 3, layers: 3, ffDim: 20 };
    const model = buildCharTransformer({ ...options, seed: 2 });
    assert.equal(model.countParams(), transformerCount(options));
    assert.equal(model.layers.filter((l) => l instanceof CausalSelfAttention).length, 3);
    const ids = tf.zeros([2, 4], 'int32');
    const y = model.predict(ids) as tf.Tensor;
    assert.deepEqual(y.shape, [2, 4, 11]);
    tf.dispose([ids, y]);
    model.dispose();
  });

  it('is causal: changing the token at t changes no logits before t, and some at t', () => {
    const model = buildCharTransformer({ ...TINY, seed: 3 });
    const base = [
      [1, 2, 3, 4, 5, 6],
      [6, 0, 0, 2, 5, 1],
    ];
    const logitsOf = (rows: number[][]) =>
      tf.tidy(() =>
        (model.predict(tf.tensor2d(rows, undefined, 'int32')) as tf.Tensor).arraySync(),
      ) as number[][][];
    const before = logitsOf(base);
    for (let t = 0; t < TINY.contextLength; t++) {
      const changed = base.map((row) =>
        row.map((id, j) => (j === t ? (id + 3) % TINY.vocabSize : id)),
      );
      const after = logitsOf(changed);
      for (let n = 0; n < base.length; n++) {
        for (let s = 0; s < t; s++) {
          assert.deepEqual(
            after[n]![s],
            before[n]![s],
            `sequence ${n}: position ${s} saw token ${t}`,
          );
        }
        assert.notDeepEqual(
          after[n]![t],
          before[n]![t],
          `sequence ${n}: position ${t} ignores its own token`,
        );
      }
    }
    // And later positions do see earlier tokens (the mask is not hiding everything).
    const first = base.map((row) => [(row[0]! + 1) % TINY.vocabSize, ...row.slice(1)]);
    const after = logitsOf(first);
    assert.notDeepEqual(after[0]![TINY.contextLength - 1], before[0]![TINY.contextLength - 1]);
    model.dispose();
  });

  it('the same seed gives the same weights; another seed other ones', () => {
    const [a, b, c] = [4, 4, 5].map((seed) => buildCharTransformer({ ...TINY, seed }));
    const [wa, wb, wc] = [a!, b!, c!].map(weightValues) as [
      Float32Array[],
      Float32Array[],
      Float32Array[],
    ];
    wa.forEach((w, i) =>
      assert.deepEqual(new Uint32Array(w.buffer), new Uint32Array(wb[i]!.buffer)),
    );
    a!.weights.forEach((w, i) => {
      if (/kernel|embeddings/.test(w.name)) {
        assert.notDeepEqual(wa[i], wc[i], `${w.name} is the same for seeds 4 and 5`);
      }
    });
    // Wq, Wk, Wv and Wo of one layer start different from each other.
    const attention = a!.weights.filter((w) => /attention\/\w+_kernel/.test(w.name));
    assert.equal(attention.length, 4);
    const values = attention.map((w) => w.read().dataSync());
    assert.notDeepEqual(values[0], values[1]);
    assert.notDeepEqual(values[2], values[3]);
    [a, b, c].forEach((m) => m!.dispose());
  });

  it('rejects bad options, naming them; modelByName builds it', () => {
    assert.throws(
      () => buildCharTransformer({ vocabSize: 10, contextLength: 8, dModel: 10, heads: 3 }),
      /char-transformer: option 'heads' \(3\) must divide option 'dModel' \(10\)/,
    );
    assert.throws(
      () => buildCharTransformer({ vocabSize: 0, contextLength: 8 }),
      /char-transformer: option 'vocabSize' must be a positive integer, got 0/,
    );
    assert.throws(
      () => buildCharTransformer({ vocabSize: 5 } as never),
      /char-transformer: option 'contextLength' is required/,
    );
    assert.throws(
      () => buildCharTransformer({ vocabSize: 5, contextLength: 4, layers: 0 }),
      /option 'layers' must be a positive integer, got 0/,
    );
    assert.throws(
      () => modelByName('char-transformer', { vocabSize: 5 }),
      /char-transformer: options 'vocabSize' and 'contextLength' are required, got 5 and undefined/,
    );
    assert.throws(
      () => modelByName('char-transformer', { vocabSize: 5, contextLength: 4, inputShape: [4] }),
      /char-transformer: option 'inputShape' applies only to 'mlp', 'small-cnn', 'resnet20'/,
    );
    assert.throws(
      () => modelByName('char-transformer', { vocabSize: 5, contextLength: 4, classes: 6 }),
      /option 'classes' \(6\) must equal 'vocabSize' \(5\)/,
    );
    assert.throws(
      () => modelByName('mlp', { dModel: 8 }),
      /mlp: option 'dModel' applies only to 'char-transformer'/,
    );
    assert.throws(() => modelByName('mlp', { depth: 3 } as never), /mlp: unknown option 'depth'/);
    const model = modelByName('char-transformer', { ...TINY, classes: TINY.vocabSize, seed: 1 });
    assert.equal(model.countParams(), transformerCount(TINY));
    model.dispose();
  });

  it('survives model.save / tf.loadLayersModel: same config, same logits', async () => {
    const model = buildCharTransformer({ ...TINY, seed: 6 });
    let saved: tf.io.ModelArtifacts | undefined;
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        saved = artifacts;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved!));
    const attention = loaded.getLayer('block1_attention');
    assert.ok(attention instanceof CausalSelfAttention);
    assert.equal(attention.getConfig().heads, 2);
    assert.equal(loaded.getLayer('position_embedding').getClassName(), 'PositionEmbedding');
    const ids = tf.tensor2d(
      [
        [0, 1, 2, 3, 4, 5],
        [6, 6, 1, 0, 2, 3],
      ],
      undefined,
      'int32',
    );
    const [ya, yb] = [model, loaded].map((m) => m.predict(ids) as tf.Tensor);
    // The loaded layer norms are the stock ones (compact-gradient-layers.ts): float32 rounding.
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(ya!, yb!))).dataSync()[0]!);
    const scale = tf.tidy(() => tf.max(tf.abs(ya!)).dataSync()[0]!);
    assert.ok(diff <= 1e-5 * scale, `logits differ by ${diff}`);
    tf.dispose([ids, ya!, yb!]);
    model.dispose();
    loaded.dispose();
  });

  it('softmaxCrossEntropy on [batch, T, vocab] equals it on the logits flattened to [batch * T, vocab]', () => {
    const logits = tf.randomNormal([3, 4, 5], 0, 2, 'float32', 8);
    const labels = tf.tidy(() =>
      tf.oneHot(tf.randomUniform([3, 4], 0, 5, 'int32', 9), 5).toFloat(),
    );
    const sequence = softmaxCrossEntropy(labels, logits);
    const flat = softmaxCrossEntropy(labels.reshape([12, 5]), logits.reshape([12, 5]));
    assert.ok(Math.abs(sequence.dataSync()[0]! - flat.dataSync()[0]!) < 1e-6);
    tf.dispose([logits, labels, sequence, flat]);
  });

  it('building, predicting and disposing leaks no tensors', () => {
    const before = tf.memory().numTensors;
    const model = modelByName('char-transformer', { ...TINY, seed: 9 });
    const ids = tf.zeros([1, TINY.contextLength], 'int32');
    tf.dispose([model.predict(ids) as tf.Tensor, ids]);
    model.dispose();
    assert.equal(tf.memory().numTensors, before);
  });
});

describe('char-transformer at its default size', () => {
  const backend = TEST_BACKENDS.includes('wasm') ? 'wasm' : TEST_BACKENDS[0]!;
  before(() => onBackend(backend));

  it(`one Hessian-vector product runs (77505 weights, context 32, 2 sequences) on ${backend}`, () => {
    const model = buildCharTransformer({ vocabSize: 65, contextLength: 32, seed: 1 });
    const ids = tf.randomUniform([2, 32], 0, 65, 'int32', 2);
    const labels = tf.tidy(() =>
      tf.oneHot(tf.randomUniform([2, 32], 0, 65, 'int32', 3), 65).toFloat(),
    );
    assertOneHvpRuns(model, ids, labels);
  });
});

const TEXT = 'the cat sat on the mat. the rat ate the hat. '.repeat(4);

for (const backend of TEST_BACKENDS) {
  describe(`char-transformer on ${backend}`, () => {
    before(() => onBackend(backend));

    it('coverage case: H v matches finite differences through attention and embeddings', (t) => {
      const transformerCase = modelCases.find((c) => c.name.startsWith('character transformer'))!;
      assert.ok(
        !transformerCase.skipBackends?.includes(backend),
        `the case is claimed on ${backend}`,
      );
      const before = tf.memory().numTensors;
      const result = runCase(transformerCase, backend, 1e-2);
      assert.equal(tf.memory().numTensors, before, 'the case leaks no tensors');
      assert.equal(result.error, undefined);
      t.diagnostic(`relative error ${result.relError.toExponential(1)}`);
      assert.ok(result.relError < 1e-3, `relative error ${result.relError}`);
      // GELU's own nodes (compact-gradient-layers.ts) rather than Erf.
      const kernels = [
        'Softmax',
        'BatchMatMul',
        'GatherV2',
        'UnsortedSegmentSum',
        'adahessianGelu',
      ];
      for (const kernel of kernels) {
        assert.ok(result.kernels.includes(kernel), `${kernel} is on the checked path`);
      }
    });

    it('model.fit with AdaHessian and one-hot [batch, T, vocab] targets lowers the loss; leaks nothing', async (t) => {
      const dataset = charDataset(TEXT, 8, { stride: 3 });
      const { x, y } = charTensors(dataset, { oneHot: true });
      const model = buildCharTransformer({
        vocabSize: dataset.vocab.size,
        contextLength: 8,
        dModel: 16,
        heads: 2,
        layers: 1,
        ffDim: 32,
        seed: 7,
      });
      const optimizer = new AdaHessian({ learningRate: 0.05, seed: 1 });
      model.compile({ optimizer, loss: softmaxCrossEntropy });
      const evalLoss = () =>
        tf.tidy(() => softmaxCrossEntropy(y, model.predict(x) as tf.Tensor).dataSync()[0]!);
      const first = evalLoss();
      const tensorsBefore = tf.memory().numTensors;
      const history = await model.fit(x, y, {
        epochs: 4,
        batchSize: 16,
        verbose: 0,
        shuffle: false,
      });
      const steps = 4 * Math.ceil(dataset.count / 16);
      assert.equal(optimizer.iterations, steps);
      assert.equal(optimizer.hessianUpdateCount, steps);
      assert.equal(tf.memory().numTensors - tensorsBefore, 2 * model.trainableWeights.length);
      const last = evalLoss();
      t.diagnostic(
        `${dataset.count} sequences, vocabulary ${dataset.vocab.size}: loss ${first.toFixed(3)} -> ${last.toFixed(3)} ` +
          `(per epoch ${(history.history.loss as number[]).map((l) => l.toFixed(3))})`,
      );
      assert.ok(Math.abs(first - Math.log(dataset.vocab.size)) < 1, 'starts near uniform');
      assert.ok(last < 0.7 * first, `loss ${first} -> ${last}`);
      tf.dispose([x, y]);
      model.dispose();
      optimizer.dispose();
    });
  });
}
