/**
 * Issue 13: conv3d, resizing / upSampling2d, dilated (fused) convs, causal conv1d, the noise
 * layers and attention-style batched matMul, on every test backend. Before this work the
 * first two were refused (Conv3D, ResizeNearestNeighbor, ResizeBilinear unverified) and a
 * dilated tf.layers.conv2d with a non-fusable or no activation could not even be trained
 * (stock's fused-conv gradient asserts dilation 1).
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { adahessian, gradAndHvpMany, softmaxCrossEntropy } from '../../src/index.js';
import { everydayCases } from '../../src/autodiff/cases/everyday.js';
import { allSecondOrderCases } from '../../src/autodiff/cases/index.js';
import { DEFAULT_FD_TOLERANCE } from '../../src/autodiff/check.js';
import {
  compareHvpWithFiniteDifferences,
  randomUnitVector,
} from '../../src/autodiff/finite-difference.js';
import { isSecondOrderVerified } from '../../src/autodiff/verified-kernels.js';
import { onBackend, TEST_BACKENDS } from '../helpers.js';

function dot(a: tf.Tensor[], b: tf.Tensor[]): number {
  return tf.tidy(() => tf.addN(a.map((t, i) => tf.sum(tf.mul(t, b[i]!)))).dataSync()[0]!);
}

/** |u.Hv - v.Hu| / max(|u.Hv|, |v.Hu|) for two random directions. */
function asymmetry(lossFn: () => tf.Scalar, vars: tf.Variable[]): number {
  const u = randomUnitVector(vars, 71);
  const v = randomUnitVector(vars, 93);
  const r = gradAndHvpMany(lossFn, vars, [u, v]);
  const uHv = dot(u, r.hvps[1]!);
  const vHu = dot(v, r.hvps[0]!);
  tf.dispose([u, v, r.loss, ...r.grads, ...r.hvps.flat()]);
  return Math.abs(uHv - vHu) / Math.max(Math.abs(uHv), Math.abs(vHu));
}

/** A dilated conv2d classifier as a zoo user writes it; `activation` picks the fused path. */
function dilatedConvModel(activation: 'relu' | 'tanh' | 'linear', seed: number): tf.Sequential {
  const init = (s: number) => tf.initializers.glorotNormal({ seed: s });
  return tf.sequential({
    layers: [
      tf.layers.conv2d({
        filters: 4,
        kernelSize: 3,
        padding: 'same',
        dilationRate: 2,
        activation,
        inputShape: [8, 8, 1],
        kernelInitializer: init(seed),
      }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 2, kernelInitializer: init(seed + 1) }),
    ],
  });
}

/** Two classes: a bright left half or a bright right half, with seeded noise. */
function halves(n: number): { x: tf.Tensor4D; y: tf.Tensor2D } {
  return tf.tidy(() => {
    const labels = Array.from({ length: n }, (_, i) => i % 2);
    const column = tf.reshape(tf.range(0, 8), [1, 1, 8, 1]);
    const left = tf.cast(tf.less(column, 4), 'float32');
    const masks = labels.map((l) => (l === 0 ? left : tf.sub(1, left)));
    const noise = tf.randomNormal([n, 8, 8, 1], 0, 0.3, 'float32', 5);
    const x = tf.add(tf.concat(masks.map((m) => tf.tile(m, [1, 8, 1, 1]))), noise) as tf.Tensor4D;
    const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 2).toFloat() as tf.Tensor2D;
    return { x, y };
  });
}

for (const backend of TEST_BACKENDS) {
  describe(`everyday layers, second order, on ${backend}`, () => {
    before(() => onBackend(backend));

    for (const c of everydayCases) {
      it(`${c.name}: H v agrees with finite differences and is symmetric`, (t) => {
        const before = tf.memory().numTensors;
        const p = c.build();
        try {
          const { relError } = compareHvpWithFiniteDifferences(p.lossFn, p.vars);
          const asym = asymmetry(p.lossFn, p.vars);
          t.diagnostic(`relError ${relError.toExponential(2)}, asymmetry ${asym.toExponential(2)}`);
          assert.ok(relError <= DEFAULT_FD_TOLERANCE, `relative error ${relError}`);
          assert.ok(asym <= 1e-4, `u.Hv and v.Hu differ by ${asym}`);
        } finally {
          p.dispose();
        }
        assert.equal(tf.memory().numTensors, before, 'tensors leaked');
      });
    }

    for (const activation of ['tanh', 'linear', 'relu'] as const) {
      it(`trains a dilated tf.layers.conv2d (${activation}) with model.fit and AdaHessian`, async (t) => {
        const before = tf.memory().numTensors;
        const { x, y } = halves(16);
        const model = dilatedConvModel(activation, 11);
        const optimizer = adahessian({ learningRate: 0.02, seed: 3 });
        model.compile({ optimizer, loss: softmaxCrossEntropy });
        const history = await model.fit(x, y, {
          epochs: 6,
          batchSize: 8,
          shuffle: false,
          verbose: 0,
        });
        const losses = history.history.loss as number[];
        t.diagnostic(`loss per epoch ${losses.map((l) => l.toFixed(4)).join(' ')}`);
        assert.ok(
          losses.every((l) => Number.isFinite(l)),
          `loss ${losses.join(', ')}`,
        );
        assert.ok(
          losses.every((l, k) => k === 0 || l < losses[k - 1]!) && losses[5]! < 0.3 * losses[0]!,
          `loss per epoch ${losses.map((l) => l.toFixed(4))}`,
        );
        model.dispose();
        optimizer.dispose();
        tf.dispose([x, y]);
        assert.equal(tf.memory().numTensors, before, 'tensors leaked by training');
      });
    }

    it('first-order gradient of a dilated tf.fused.conv2d equals the unfused conv + bias, bit for bit', () => {
      tf.tidy(() => {
        const x = tf.randomNormal([2, 9, 9, 2], 0, 1, 'float32', 1) as tf.Tensor4D;
        const f = tf.randomNormal([3, 3, 2, 3], 0, 0.5, 'float32', 2) as tf.Tensor4D;
        const b = tf.randomNormal([3], 0, 0.5, 'float32', 3);
        // A linear head: both get the same dy whatever rounding the fused forward does.
        const r = tf.randomNormal([2, 9, 9, 3], 0, 1, 'float32', 4);
        const head = (y: tf.Tensor) => tf.sum(tf.mul(y, r));
        const fused = tf.grads((a: tf.Tensor, w: tf.Tensor, c: tf.Tensor) =>
          head(
            tf.fused.conv2d({
              x: a as tf.Tensor4D,
              filter: w as tf.Tensor4D,
              strides: 1,
              pad: 'same',
              dilations: 2,
              bias: c,
            }),
          ),
        )([x, f, b]);
        const unfused = tf.grads((a: tf.Tensor, w: tf.Tensor, c: tf.Tensor) =>
          head(tf.add(tf.conv2d(a as tf.Tensor4D, w as tf.Tensor4D, 1, 'same', 'NHWC', 2), c)),
        )([x, f, b]);
        fused.forEach((g, i) =>
          assert.deepEqual(g.dataSync(), unfused[i]!.dataSync(), `input ${i}`),
        );
      });
    });

    it('gives dilated depthwiseConv2d the gradient of the equivalent zero-stuffed filter', () => {
      tf.tidy(() => {
        const x = tf.randomNormal([2, 9, 8, 2], 0, 1, 'float32', 5) as tf.Tensor4D;
        const f = tf.randomNormal([3, 2, 2, 2], 0, 0.5, 'float32', 6) as tf.Tensor4D;
        // A 3x2 filter at dilations [2, 3] is a 5x4 filter with zeros between its taps.
        const big = tf.buffer([5, 4, 2, 2]);
        const fv = f.arraySync();
        for (let i = 0; i < 3; i++)
          for (let j = 0; j < 2; j++)
            for (let c = 0; c < 2; c++)
              for (let m = 0; m < 2; m++) big.set(fv[i]![j]![c]![m]!, 2 * i, 3 * j, c, m);
        const head = (y: tf.Tensor) => tf.sum(tf.sin(y));
        const [gx, gf] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          head(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same', 'NHWC', [2, 3])),
        )([x, f]);
        const [rx, rBig] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          head(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same')),
        )([x, big.toTensor()]);
        const rf = tf.stridedSlice(rBig!, [0, 0, 0, 0], [5, 4, 2, 2], [2, 3, 1, 1]);
        const close = (a: tf.Tensor, b: tf.Tensor) =>
          tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]! <= 1e-5 * tf.max(tf.abs(b)).dataSync()[0]!;
        assert.ok(close(gx!, rx!), 'input gradient');
        assert.ok(close(gf!, rf), 'filter gradient');
      });
    });

    it('the dilated conv gradients run no kernel on tensors of rank > 4 (webgl packs only low ranks)', () => {
      const c = everydayCases.find((k) =>
        k.name.startsWith('tf.fused.conv2d dilations 2, bias, linear'),
      )!;
      const d = allSecondOrderCases().find((k) => k.name === 'conv2d same, dilations 2')!;
      const e = everydayCases.find((k) => k.name === 'depthwiseConv2d same, dilations 2')!;
      const engine = tf.engine() as unknown as {
        runKernel: (name: string, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap) => unknown;
      };
      const original = engine.runKernel;
      const ranks = new Map<string, number>();
      engine.runKernel = function (name, inputs, attrs) {
        const out = original.call(this, name, inputs, attrs);
        const tensors = [...Object.values(inputs), ...(Array.isArray(out) ? out : [out])];
        const rank = Math.max(
          ...tensors.filter((t) => t != null).map((t) => (t as tf.Tensor).rank),
        );
        ranks.set(name, Math.max(ranks.get(name) ?? 0, rank));
        return out;
      };
      try {
        for (const k of [c, d, e]) {
          const p = k.build();
          const v = randomUnitVector(p.vars, 5);
          const r = gradAndHvpMany(p.lossFn, p.vars, [v]);
          tf.dispose([v, r.loss, ...r.grads, ...r.hvps.flat()]);
          p.dispose();
        }
      } finally {
        engine.runKernel = original;
      }
      assert.ok(ranks.has('PadV2'), 'the zero-stuffing pad ran');
      const high = [...ranks].filter(([, rank]) => rank > 4);
      assert.deepEqual(high, []);
    });
  });
}

describe('everyday layers in the coverage table', () => {
  it('are all listed, and their kernels verified', () => {
    const names = new Set(allSecondOrderCases().map((c) => c.name));
    for (const c of everydayCases) assert.ok(names.has(c.name), c.name);
    for (const k of [
      'Conv3D',
      'Conv3DBackpropInputV2',
      'Conv3DBackpropFilterV2',
      'ResizeNearestNeighbor',
      'ResizeNearestNeighborGrad',
      'ResizeBilinear',
      'ResizeBilinearGrad',
      'fusedDepthwiseConv2d__op',
    ]) {
      assert.ok(isSecondOrderVerified(k), k);
    }
  });
});
