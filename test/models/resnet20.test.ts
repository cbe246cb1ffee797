/**
 * The CIFAR ResNet (He et al. 2016, option A shortcuts): structure and parameter counts by
 * hand, the zero-padding shortcut, seeds, options, save / load, training with AdaHessian
 * through model.fit, and the second-order coverage case with its ReLU-kink precondition.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  AdaHessian,
  buildResNet20,
  modelByName,
  randomUnitVector,
  softmaxCrossEntropy,
  ZeroPadShortcut,
} from '../../src/index.js';
import { modelCases, TINY_RESNET } from '../../src/autodiff/cases/models.js';
import { trainableVariables } from '../../src/autodiff/cases/nn.js';
import { seeded } from '../../src/autodiff/cases/basic.js';
import { runCase } from '../../src/autodiff/check.js';
import { onBackend, TEST_BACKENDS } from '../helpers.js';
import { assertOneHvpRuns } from './hvp-smoke.js';

/** Weights of a bias-free 3x3 convolution. */
const conv3x3 = (cin: number, cout: number) => 3 * 3 * cin * cout;
/** gamma, beta (trainable), moving mean and variance (not) of a batch norm over c channels. */
const batchNorm = (c: number) => ({ trainable: 2 * c, all: 4 * c });
const dense = (inputs: number, units: number) => inputs * units + units;

/** The paper's count for 6n + 2 layers, widths w, 2w, 4w, option A (shortcuts are free). */
function resnetCounts(cin: number, w: number, n: number, classes: number) {
  let convs = conv3x3(cin, w);
  let channels = w; // channels batch-normalised
  const widths = [w, 2 * w, 4 * w];
  widths.forEach((width, stage) => {
    const first = stage === 0 ? w : widths[stage - 1]!;
    convs += conv3x3(first, width) + conv3x3(width, width); // block 1
    convs += (n - 1) * 2 * conv3x3(width, width); // blocks 2..n
    channels += 2 * n * width;
  });
  const head = dense(4 * w, classes);
  return {
    trainable: convs + batchNorm(channels).trainable + head,
    all: convs + batchNorm(channels).all + head,
  };
}

function weightValues(model: tf.LayersModel): Float32Array[] {
  return model.getWeights().map((w) => w.dataSync() as Float32Array);
}

function trainableCount(model: tf.LayersModel): number {
  return model.trainableWeights.reduce((sum, w) => sum + w.shape.reduce((a, b) => a! * b!, 1)!, 0);
}

describe('resnet20: structure', () => {
  before(() => onBackend('cpu'));

  it('ResNet-20 on CIFAR (32x32x3): 269722 trainable weights (0.27M), 271098 with BN statistics', () => {
    const model = buildResNet20({ seed: 1 });
    const expected = resnetCounts(3, 16, 3, 10);
    assert.deepEqual(expected, { trainable: 269722, all: 271098 });
    assert.equal(trainableCount(model), expected.trainable);
    assert.equal(model.countParams(), expected.all);
    // 6n + 2 = 20 weighted layers: 19 convolutions and the dense head; 19 batch norms.
    const byClass = (name: string) => model.layers.filter((l) => l.getClassName() === name);
    assert.equal(byClass('Conv2D').length, 19);
    assert.equal(byClass('Dense').length, 1);
    assert.equal(byClass('BatchNormalization').length, 19);
    assert.equal(byClass('ZeroPadShortcut').length, 2, 'one shortcut per stride-2 block');
    assert.ok(
      byClass('Conv2D').every((l) => l.getConfig().useBias === false),
      'convolutions have no bias',
    );
    // Stage outputs: 32x32x16, 16x16x32, 8x8x64.
    assert.deepEqual(model.getLayer('stage1_block3_relu2').outputShape, [null, 32, 32, 16]);
    assert.deepEqual(model.getLayer('stage2_block1_shortcut').outputShape, [null, 16, 16, 32]);
    assert.deepEqual(model.getLayer('stage2_block3_relu2').outputShape, [null, 16, 16, 32]);
    assert.deepEqual(model.getLayer('stage3_block3_relu2').outputShape, [null, 8, 8, 64]);
    const x = tf.randomUniform([2, 32, 32, 3], 0, 1, 'float32', 1);
    const y = model.predict(x) as tf.Tensor;
    assert.deepEqual(y.shape, [2, 10]);
    assert.ok(y.dataSync().every(Number.isFinite));
    tf.dispose([x, y]);
    model.dispose();
  });

  it('works on Fashion-MNIST-sized input (28x28x1: 28 -> 14 -> 7) and honours width and blocks', () => {
    const mnist = buildResNet20({ inputShape: [28, 28, 1], seed: 1 });
    assert.equal(mnist.countParams(), resnetCounts(1, 16, 3, 10).all);
    assert.equal(mnist.countParams(), 271098 - conv3x3(2, 16));
    assert.deepEqual(mnist.getLayer('stage3_block1_shortcut').outputShape, [null, 7, 7, 64]);
    const x = tf.zeros([3, 28, 28, 1]);
    const y = mnist.predict(x) as tf.Tensor;
    assert.deepEqual(y.shape, [3, 10]);
    tf.dispose([x, y]);
    mnist.dispose();

    const resnet32 = buildResNet20({ blocksPerStage: 5, width: 8, classes: 4, seed: 2 });
    assert.equal(resnet32.name, 'resnet32');
    assert.equal(resnet32.countParams(), resnetCounts(3, 8, 5, 4).all);
    assert.equal(resnet32.layers.filter((l) => l.getClassName() === 'Conv2D').length, 31);
    resnet32.dispose();

    const odd = buildResNet20({ inputShape: [9, 7, 2], width: 4, blocksPerStage: 1, seed: 3 });
    // 'same' stride-2 convolutions and the shortcut both give ceil(size / 2).
    assert.deepEqual(odd.getLayer('stage3_block1_add').outputShape, [null, 3, 2, 16]);
    const z = tf.ones([1, 9, 7, 2]);
    const out = odd.predict(z) as tf.Tensor;
    assert.deepEqual(out.shape, [1, 10]);
    tf.dispose([z, out]);
    odd.dispose();
  });

  it('ZeroPadShortcut keeps pixels (2i, 2j) and appends zero channels', () => {
    const x = tf.tensor4d(
      Array.from({ length: 2 * 5 * 5 * 2 }, (_, i) => i),
      [2, 5, 5, 2],
    );
    const layer = new ZeroPadShortcut({ filters: 3, strides: 2 });
    const y = layer.apply(x) as tf.Tensor;
    assert.deepEqual(y.shape, [2, 3, 3, 3]);
    const xs = x.arraySync() as number[][][][];
    const ys = y.arraySync() as number[][][][];
    for (let n = 0; n < 2; n++) {
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 3; j++) {
          assert.deepEqual(ys[n]![i]![j], [...xs[n]![2 * i]![2 * j]!, 0]);
        }
      }
    }
    assert.throws(
      () => new ZeroPadShortcut({ filters: 1, strides: 2 }).apply(x),
      /input has 2 channels, more than filters = 1/,
    );
    assert.throws(
      () => new ZeroPadShortcut({ filters: 4, strides: 0 }),
      /'strides' must be a positive integer, got 0/,
    );
    tf.dispose([x, y]);
  });

  it('the same seed gives the same weights; other seeds other kernels; BN starts at 1 and 0', () => {
    const options = {
      width: 4,
      blocksPerStage: 1,
      inputShape: [8, 8, 3] as [number, number, number],
    };
    const a = buildResNet20({ ...options, seed: 42 });
    const b = buildResNet20({ ...options, seed: 42 });
    const c = buildResNet20({ ...options, seed: 43 });
    const [wa, wb, wc] = [a, b, c].map(weightValues) as [
      Float32Array[],
      Float32Array[],
      Float32Array[],
    ];
    wa.forEach((w, i) =>
      assert.deepEqual(new Uint32Array(w.buffer), new Uint32Array(wb[i]!.buffer)),
    );
    a.weights.forEach((w, i) => {
      if (w.name.includes('kernel')) {
        assert.notDeepEqual(wa[i], wc[i], `${w.name} is the same for seeds 42 and 43`);
      } else if (/gamma|moving_variance/.test(w.name)) {
        assert.ok(
          wa[i]!.every((v) => v === 1),
          w.name,
        );
      } else {
        assert.ok(
          wa[i]!.every((v) => v === 0),
          `${w.name} should start at zero`,
        );
      }
    });
    [a, b, c].forEach((m) => m.dispose());
  });

  it('rejects bad options, naming them; modelByName builds it', () => {
    assert.throws(
      () => buildResNet20({ width: 0 }),
      /resnet20: option 'width' must be a positive integer, got 0/,
    );
    assert.throws(
      () => buildResNet20({ blocksPerStage: 1.5 }),
      /resnet20: option 'blocksPerStage' must be a positive integer, got 1.5/,
    );
    assert.throws(
      () => buildResNet20({ inputShape: [32, 32] as unknown as [number, number, number] }),
      /resnet20: option 'inputShape' must be \[height, width, channels\], got \[32,32\]/,
    );
    assert.throws(() => buildResNet20({ classes: -1 }), /option 'classes'.*got -1/);
    assert.throws(() => buildResNet20({ seed: Infinity }), /seed must be a non-negative integer/);
    assert.throws(
      () => modelByName('resnet20', { hidden: 8 }),
      /resnet20: option 'hidden' applies only to 'mlp'/,
    );
    assert.throws(
      () => modelByName('resnet20', { heads: 2 }),
      /resnet20: option 'heads' applies only to 'char-transformer'/,
    );
    assert.throws(
      () => modelByName('mlp', { width: 8 }),
      /mlp: option 'width' applies only to 'resnet20'/,
    );
    const model = modelByName('resnet20', {
      inputShape: [8, 8, 1],
      classes: 2,
      width: 2,
      blocksPerStage: 2,
      seed: 1,
    });
    assert.equal(model.countParams(), resnetCounts(1, 2, 2, 2).all);
    model.dispose();
  });

  it('survives model.save / tf.loadLayersModel (ZeroPadShortcut is registered)', async () => {
    const model = buildResNet20({ inputShape: [8, 8, 3], width: 4, blocksPerStage: 1, seed: 4 });
    let saved: tf.io.ModelArtifacts | undefined;
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        saved = artifacts;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved!));
    const x = seeded([2, 8, 8, 3], 5);
    const [ya, yb] = [model, loaded].map((m) => m.predict(x) as tf.Tensor);
    assert.deepEqual(yb!.dataSync(), ya!.dataSync());
    assert.equal(loaded.getLayer('stage2_block1_shortcut').getClassName(), 'ZeroPadShortcut');
    tf.dispose([x, ya!, yb!]);
    model.dispose();
    loaded.dispose();
  });
});

/**
 * Sign pattern of every ReLU output of `model` in training mode (batch statistics), the
 * pieces of the piecewise-quadratic loss: finite differences between two points are only
 * comparable with H v when both have the same pattern.
 */
function reluPattern(model: tf.LayersModel, x: tf.Tensor): Int32Array {
  const relus = model.layers.filter((l) => l.getClassName() === 'ReLU');
  const probe = tf.model({
    inputs: model.inputs,
    outputs: relus.map((l) => l.output as tf.SymbolicTensor),
  });
  return tf.tidy(() => {
    const outs = probe.apply(x, { training: true }) as tf.Tensor[];
    return tf.concat(outs.map((o) => tf.greater(o, 0).toInt().flatten())).dataSync() as Int32Array;
  });
}

for (const backend of TEST_BACKENDS) {
  describe(`resnet20 on ${backend}`, () => {
    before(() => onBackend(backend));

    it('ZeroPadShortcut (one 1x1 conv) equals a 1x1 average pool + tf.pad bit for bit, with its gradient', () => {
      for (const [shape, filters, strides] of [
        [[3, 9, 7, 4], 8, 2],
        [[2, 6, 6, 3], 3, 2],
        [[2, 5, 4, 3], 5, 1],
      ] as [[number, number, number, number], number, number][]) {
        const x = tf.randomNormal(shape, 0, 1, 'float32', 11);
        const layer = new ZeroPadShortcut({ filters, strides });
        const reference = (t: tf.Tensor) =>
          tf.pad(tf.avgPool(t as tf.Tensor4D, 1, strides, 'valid'), [
            [0, 0],
            [0, 0],
            [0, 0],
            [0, filters - shape[3]],
          ]);
        const got = layer.apply(x) as tf.Tensor;
        const want = reference(x);
        assert.deepEqual(got.shape, want.shape);
        assert.deepEqual(got.dataSync(), want.dataSync(), `values, ${shape} to ${filters}`);
        const dy = tf.randomNormal(want.shape, 0, 1, 'float32', 12);
        const gotGrad = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(layer.apply(t) as tf.Tensor, dy)))(
          x,
        );
        const wantGrad = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(reference(t), dy)))(x);
        assert.deepEqual(gotGrad.dataSync(), wantGrad.dataSync(), `gradient, ${shape}`);
        tf.dispose([x, got, want, dy, gotGrad, wantGrad]);
      }
    });

    it('coverage case: H v matches finite differences, and no step crosses a ReLU kink', (t) => {
      const resnetCase = modelCases.find((c) => c.name.startsWith('ResNet'))!;
      const before = tf.memory().numTensors;
      const result = runCase(resnetCase, backend, 1e-2);
      assert.equal(tf.memory().numTensors, before, 'the case leaks no tensors');
      assert.equal(result.error, undefined);
      t.diagnostic(`relative error ${result.relError.toExponential(1)}`);
      assert.ok(result.relError < 2e-3, `relative error ${result.relError}`);
      for (const kernel of ['fusedConv2d__op', 'adahessianBatchNormTraining', 'Conv2D', 'Relu']) {
        assert.ok(result.kernels.includes(kernel), `${kernel} is on the checked path`);
      }
      // Batch norm's compact gradient and the shortcut's 1x1 conv replaced these.
      for (const kernel of ['FusedBatchNorm', 'AvgPoolGrad', 'PadV2']) {
        assert.ok(!result.kernels.includes(kernel), `${kernel} is not on the checked path`);
      }

      // The case's precondition: along the direction and steps compareHvpWithFiniteDifferences
      // uses by default (randomUnitVector(vars, 1234); 1e-2, 3e-3, 1e-3), no ReLU flips.
      const { options, dataSeed, labels } = TINY_RESNET;
      const model = buildResNet20(options);
      const x = seeded([labels.length, ...options.inputShape], dataSeed);
      const vars = trainableVariables(model);
      const vector = randomUnitVector(vars, 1234);
      const at = reluPattern(model, x);
      const original = vars.map((v) => v.clone());
      const flips: string[] = [];
      for (const eps of [1e-2, 3e-3, 1e-3]) {
        for (const sign of [1, -1]) {
          vars.forEach((v, i) =>
            v.assign(tf.tidy(() => tf.add(original[i]!, tf.mul(vector[i]!, sign * eps)))),
          );
          const moved = reluPattern(model, x);
          const changed = moved.reduce((count, p, k) => count + (p === at[k] ? 0 : 1), 0);
          if (changed > 0) flips.push(`${changed} at ${sign * eps}`);
        }
      }
      assert.deepEqual(
        flips,
        [],
        'test precondition: a finite-difference step flips ReLUs; choose another dataSeed',
      );
      tf.dispose([x, ...vector, ...original]);
      model.dispose();
    });

    it('model.fit with AdaHessian lowers the loss of a tiny ResNet in 8 steps; leaks nothing', async (t) => {
      const model = buildResNet20({
        inputShape: [8, 8, 3],
        width: 4,
        blocksPerStage: 1,
        classes: 3,
        seed: 6,
      });
      // Three classes told apart by which colour channel is brighter.
      const labels = Array.from({ length: 24 }, (_, i) => i % 3);
      const x = tf.tidy(() => {
        const noise = tf.randomUniform([24, 8, 8, 3], 0, 1, 'float32', 7);
        const bright = tf.oneHot(tf.tensor1d(labels, 'int32'), 3).reshape([24, 1, 1, 3]);
        return tf.add(noise, bright);
      });
      const y = tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), 3).toFloat());
      const optimizer = new AdaHessian({ learningRate: 0.05, seed: 1 });
      model.compile({ optimizer, loss: softmaxCrossEntropy });
      const evalLoss = () =>
        tf.tidy(
          () =>
            softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor).dataSync()[0]!,
        );
      const first = evalLoss();
      const tensorsBefore = tf.memory().numTensors;
      await model.fit(x, y, { epochs: 2, batchSize: 6, verbose: 0, shuffle: false });
      assert.equal(optimizer.iterations, 8);
      assert.equal(optimizer.hessianUpdateCount, 8);
      // Only the optimizer's m and v per trainable weight stay behind.
      assert.equal(tf.memory().numTensors - tensorsBefore, 2 * model.trainableWeights.length);
      const last = evalLoss();
      t.diagnostic(`loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
      assert.ok(last < 0.8 * first, `loss ${first} -> ${last}`);
      tf.dispose([x, y]);
      model.dispose();
      optimizer.dispose();
    });
  });
}

describe('resnet20 at full size', () => {
  const backend = TEST_BACKENDS.includes('wasm') ? 'wasm' : TEST_BACKENDS[0]!;
  before(() => onBackend(backend));

  it(`one Hessian-vector product runs (269722 weights, 32x32x3, 2 images) on ${backend}`, () => {
    const model = buildResNet20({ seed: 1 });
    const x = tf.randomUniform([2, 32, 32, 3], 0, 1, 'float32', 3);
    const y = tf.tidy(() => tf.oneHot(tf.tensor1d([1, 2], 'int32'), 10).toFloat());
    assertOneHvpRuns(model, x, y);
  });
});

describe('resnet20: memory', () => {
  before(() => onBackend('cpu'));

  it('building, predicting and disposing leaks no tensors', () => {
    const before = tf.memory().numTensors;
    const model = modelByName('resnet20', {
      inputShape: [8, 8, 3],
      width: 2,
      blocksPerStage: 1,
      seed: 9,
    });
    const x = tf.ones([1, 8, 8, 3]);
    tf.dispose([model.predict(x) as tf.Tensor, x]);
    model.dispose();
    assert.equal(tf.memory().numTensors, before);
  });
});
