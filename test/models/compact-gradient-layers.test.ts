/**
 * layerNormLastAxis and geluErf (src/autodiff/gradients/layer-norm.ts, gelu.ts) and the layers
 * that use them (src/models/compact-gradient-layers.ts) in the char transformer: values,
 * gradients and Hessian-vector products equal stock tf.layers' to float32 rounding, the
 * coverage cases (and the whole transformer's) pass against finite differences, saved models
 * load as the stock layers, nothing leaks, bad input gets one line.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { buildCharTransformer, gradAndHvp, softmaxCrossEntropy } from '../../src/index.js';
import { geluErf } from '../../src/autodiff/gradients/gelu.js';
import { layerNormLastAxis } from '../../src/autodiff/gradients/layer-norm.js';
import { modelCases } from '../../src/autodiff/cases/models.js';
import { nnCases } from '../../src/autodiff/cases/nn.js';
import { runCase } from '../../src/autodiff/check.js';
import {
  CompactGradientDense,
  CompactLayerNormalization,
} from '../../src/models/compact-gradient-layers.js';
import { maxAbs, maxAbsDiff, onBackend, TEST_BACKENDS } from '../helpers.js';

/** max |a - b| / max |b|: float32 rounding gives ~1e-7..1e-5 here, a wrong term ~1e-1. */
function relDiff(a: tf.Tensor, b: tf.Tensor): number {
  return maxAbsDiff(a, b) / Math.max(maxAbs(b), 1e-30);
}

/** tf.layers' LayerNormalization (axis -1) and Dense gelu, as functions of x and weights. */
function stockLayerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor {
  const layer = tf.layers.layerNormalization({ axis: -1 });
  layer.build(x.shape);
  // Reads the given tensors as the layer's weights, so that gradients reach them.
  const state = layer as unknown as { gamma: { read(): tf.Tensor }; beta: { read(): tf.Tensor } };
  const [g0, b0] = layer.weights;
  state.gamma = { read: () => gamma };
  state.beta = { read: () => beta };
  const y = layer.apply(x) as tf.Tensor;
  g0!.dispose();
  b0!.dispose();
  return y;
}

function stockGelu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.mul(0.5, tf.add(1, tf.erf(tf.div(x, Math.SQRT2)))));
}

const TINY = { vocabSize: 7, contextLength: 5, dModel: 8, heads: 2, layers: 1, ffDim: 12 };

for (const backend of TEST_BACKENDS) {
  describe(`compact layer norm and GELU on ${backend}`, () => {
    before(() => onBackend(backend));

    // Not centred and not unit scale, so that the moments matter.
    const make = () => ({
      x: tf.tidy(() => tf.add(tf.mul(tf.randomNormal([4, 6, 5], 0, 1, 'float32', 1), 2), 0.7)),
      gamma: tf.tidy(() => tf.add(1, tf.randomNormal([5], 0, 0.3, 'float32', 2))) as tf.Tensor1D,
      beta: tf.randomNormal([5], 0, 0.3, 'float32', 3) as tf.Tensor1D,
      weights: tf.randomNormal([4, 6, 5], 0, 1, 'float32', 4),
    });
    const head = (weights: tf.Tensor) => (y: tf.Tensor) =>
      tf.sum(tf.mul(tf.sin(y), weights)) as tf.Scalar;

    it("layer norm: stock tf.layers' values and gradients in x, gamma and beta", () => {
      const { x, gamma, beta, weights } = make();
      const before = tf.memory().numTensors;
      const [a, b] = [layerNormLastAxis(x, gamma, beta, 1e-3), stockLayerNorm(x, gamma, beta)];
      assert.ok(relDiff(a, b) < 1e-5, `values: ${relDiff(a, b)}`);
      tf.dispose([a, b]);
      assert.equal(tf.memory().numTensors, before, 'no tensors left');
      const f = head(weights);
      const got = tf.grads((p: tf.Tensor, g: tf.Tensor, c: tf.Tensor) =>
        f(layerNormLastAxis(p, g as tf.Tensor1D, c as tf.Tensor1D, 1e-3)),
      )([x, gamma, beta]);
      const want = tf.grads((p: tf.Tensor, g: tf.Tensor, c: tf.Tensor) =>
        f(stockLayerNorm(p, g, c)),
      )([x, gamma, beta]);
      ['x', 'gamma', 'beta'].forEach((name, i) => {
        const rel = relDiff(got[i]!, want[i]!);
        assert.ok(rel < 2e-5, `d/d${name}: relative difference ${rel}`);
      });
      tf.dispose([...got, ...want, x, gamma, beta, weights]);
    });

    it("GELU: stock tf.layers' values bit for bit, its gradient to float32 rounding", () => {
      const { x, weights } = make();
      const [a, b] = [geluErf(x), stockGelu(x)];
      assert.deepEqual(a.dataSync(), b.dataSync());
      const f = head(weights);
      const [got] = tf.grads((p: tf.Tensor) => f(geluErf(p)))([x]);
      const [want] = tf.grads((p: tf.Tensor) => f(stockGelu(p)))([x]);
      assert.ok(relDiff(got!, want!) < 2e-6, `dx: relative difference ${relDiff(got!, want!)}`);
      tf.dispose([a, b, got!, want!, x, weights]);
    });

    it('pass their coverage cases against finite differences, through their own nodes', () => {
      // Each gradient is a node too, whose derivative is written out: the moments (Mean) and
      // Erf are off the second-order path.
      for (const [prefix, on, off] of [
        ['layer norm (compact', ['adahessianLayerNorm', 'adahessianLayerNormGrad'], ['Mean']],
        ['gelu, erf form (compact', ['adahessianGelu', 'adahessianGeluGrad'], ['Erf']],
      ] as const) {
        const c = nnCases.find((k) => k.name.startsWith(prefix))!;
        const result = runCase(c, backend, 1e-2);
        assert.equal(result.error, undefined);
        assert.ok(result.relError < 1e-2, `${c.name}: relative error ${result.relError}`);
        for (const node of on) {
          assert.ok(result.kernels.includes(node), `${node} is on the checked path`);
        }
        for (const kernel of off) {
          assert.ok(!result.kernels.includes(kernel), `${kernel} is not on the checked path`);
        }
      }
    });

    it('the transformer: H v matches finite differences through both nodes', () => {
      const transformerCase = modelCases.find((c) => c.name.startsWith('character transformer'))!;
      if (transformerCase.skipBackends?.includes(backend)) return;
      const result = runCase(transformerCase, backend, 1e-2);
      assert.equal(result.error, undefined);
      assert.ok(result.relError < 1e-3, `relative error ${result.relError}`);
      const nodes = ['adahessianLayerNorm', 'adahessianLayerNormGrad'];
      for (const node of [...nodes, 'adahessianGelu', 'adahessianGeluGrad']) {
        assert.ok(result.kernels.includes(node), `${node} is on the checked path`);
      }
      assert.ok(!result.kernels.includes('FusedBatchNorm'), "stock layer norm's gradient unused");
    });

    it("the transformer: the stock layers' loss, gradients and H v to float32 rounding", () => {
      const ours = buildCharTransformer({ ...TINY, seed: 4 });
      const theirs = buildCharTransformer({ ...TINY, seed: 4, compactGradients: false });
      const ids = tf.tensor2d(
        [
          [0, 1, 2, 3, 4],
          [6, 6, 1, 0, 2],
        ],
        undefined,
        'int32',
      );
      const labels = tf.tidy(() =>
        tf
          .oneHot(
            tf.tensor2d(
              [
                [1, 2, 3, 4, 5],
                [6, 1, 0, 2, 3],
              ],
              undefined,
              'int32',
            ),
            7,
          )
          .toFloat(),
      );
      const vector = ours.trainableWeights.map((w, i) =>
        tf.randomNormal(w.shape as number[], 0, 1, 'float32', 20 + i),
      );
      const run = (model: tf.LayersModel) =>
        gradAndHvp(
          () => softmaxCrossEntropy(labels, model.apply(ids, { training: true }) as tf.Tensor),
          model.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val),
          vector,
        );
      const before = tf.memory().numTensors;
      const a = run(ours);
      const b = run(theirs);
      assert.ok(Math.abs(a.loss.dataSync()[0]! - b.loss.dataSync()[0]!) < 1e-5, 'loss');
      ours.trainableWeights.forEach((w, i) => {
        // The keys' bias has a zero gradient (softmax ignores a constant per row): rounding only.
        if (w.name.includes('key_bias')) return;
        const g = relDiff(a.grads[i]!, b.grads[i]!);
        const h = relDiff(a.hvp[i]!, b.hvp[i]!);
        assert.ok(g < 1e-5, `gradient of ${w.name}: ${g}`);
        assert.ok(h < 1e-4, `H v of ${w.name}: ${h}`);
      });
      tf.dispose([a.loss, ...a.grads, ...a.hvp, b.loss, ...b.grads, ...b.hvp]);
      assert.equal(tf.memory().numTensors, before, 'no tensors left by the products');
      tf.dispose([ids, labels, ...vector]);
      ours.dispose();
      theirs.dispose();
    });

    it('the layers save as the stock LayerNormalization and Dense gelu, and load as them', async () => {
      const model = buildCharTransformer({ ...TINY, seed: 6 });
      assert.ok(model.getLayer('block1_ln1') instanceof CompactLayerNormalization);
      assert.ok(model.getLayer('block1_mlp_hidden') instanceof CompactGradientDense);
      let saved: tf.io.ModelArtifacts | undefined;
      await model.save(
        tf.io.withSaveHandler(async (artifacts) => {
          saved = artifacts;
          return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
        }),
      );
      const topology = JSON.stringify(saved!.modelTopology);
      assert.ok(!topology.includes('Compact'), 'no class of ours in the saved topology');
      const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved!));
      for (const name of ['block1_ln1', 'block1_ln2', 'final_ln']) {
        assert.equal(loaded.getLayer(name).getClassName(), 'LayerNormalization');
        assert.ok(!(loaded.getLayer(name) instanceof CompactLayerNormalization));
      }
      const hidden = loaded.getLayer('block1_mlp_hidden');
      assert.equal(hidden.getClassName(), 'Dense');
      assert.equal(hidden.getConfig()['activation'], 'gelu');
      const ids = tf.tensor2d([[0, 1, 2, 3, 4]], undefined, 'int32');
      const [ya, yb] = [model, loaded].map((m) => m.predict(ids) as tf.Tensor);
      assert.ok(relDiff(ya!, yb!) < 1e-5, `logits: ${relDiff(ya!, yb!)}`);
      tf.dispose([ids, ya!, yb!]);
      model.dispose();
      loaded.dispose();
    });

    it('name the problem with bad input', () => {
      const x = tf.zeros([2, 3]);
      const [two, three] = [tf.ones([2]) as tf.Tensor1D, tf.ones([3]) as tf.Tensor1D];
      assert.throws(
        () => layerNormLastAxis(x, two, three, 1e-3),
        /^Error: layerNormLastAxis: gamma must have shape \[3\] \(x's last axis\), got \[2\]\.$/,
      );
      assert.throws(
        () => layerNormLastAxis(x, three, three, 0),
        /^Error: layerNormLastAxis: epsilon must be positive, got 0\.$/,
      );
      assert.throws(
        () => buildCharTransformer({ ...TINY, compactGradients: 'yes' as never }),
        /^Error: char-transformer: option 'compactGradients' must be true or false, got yes\.$/,
      );
      tf.dispose([x, two, three]);
    });
  });
}
