/** The three ways to use AdaHessian, and the baselines under the same roof. */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  AdaHessian,
  AdamW,
  adahessian,
  buildMlp,
  hutchinsonDiagonal,
  optimizerByName,
  OPTIMIZER_NAMES,
  RademacherGenerator,
  softmaxCrossEntropy,
} from '../../src/index.js';
import { onBackend, TEST_BACKENDS } from '../helpers.js';
import { lcg } from './reference.js';

/** Three Gaussian blobs in 6-D, one-hot labels. */
function blobs(n: number): { x: tf.Tensor2D; y: tf.Tensor2D } {
  const rand = lcg(17);
  const xs: number[] = [];
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    labels.push(c);
    for (let j = 0; j < 6; j++) xs.push((j % 3 === c ? 1.5 : 0) + rand());
  }
  return {
    x: tf.tensor2d(xs, [n, 6]),
    y: tf.oneHot(tf.tensor1d(labels, 'int32'), 3).toFloat() as tf.Tensor2D,
  };
}

for (const backend of TEST_BACKENDS) {
  describe(`using AdaHessian on ${backend}`, () => {
    before(() => onBackend(backend));

    it('1. model.compile + model.fit, unchanged user code, with a second-order-safe loss', async () => {
      const { x, y } = blobs(96);
      const model = buildMlp({ inputShape: [6, 1], hidden: 16, classes: 3, seed: 1 });
      const optimizer = adahessian({ seed: 1 });
      model.compile({ optimizer, loss: softmaxCrossEntropy, metrics: ['accuracy'] });
      const x3 = x.reshape([96, 6, 1]);
      const history = await model.fit(x3, y, {
        epochs: 6,
        batchSize: 16,
        verbose: 0,
        shuffle: false,
      });
      const losses = history.history.loss as number[];
      assert.equal(optimizer.iterations, 36);
      assert.ok(losses[5]! < 0.5 * losses[0]!, `loss per epoch ${losses.map((l) => l.toFixed(3))}`);
      tf.dispose([x, x3, y]);
      model.dispose();
      optimizer.dispose();
    });

    it('2. minimize(lossFn, returnCost, varList) in a custom loop', () => {
      const { x, y } = blobs(60);
      const w = tf.variable(tf.zeros([6, 3]));
      const b = tf.variable(tf.zeros([3]));
      const opt = new AdaHessian({ learningRate: 0.3, seed: 2 });
      const loss = () => softmaxCrossEntropy(y, tf.add(tf.matMul(x, w), b));
      const values: number[] = [];
      for (let i = 0; i < 30; i++) {
        const cost = opt.minimize(loss, true, [w, b])!;
        values.push(cost.dataSync()[0]!);
        cost.dispose();
      }
      assert.ok(
        Math.abs(values[0]! - Math.log(3)) < 1e-5,
        'first cost is the loss before the step',
      );
      assert.ok(values[29]! < 0.3 * values[0]!, `cost ${values[0]} -> ${values[29]}`);
      tf.dispose([x, y, w, b]);
      opt.dispose();
    });

    it('3. the lower-level step with a diagonal the caller computed (hutchinsonDiagonal)', () => {
      const { x, y } = blobs(60);
      const w = tf.variable(tf.zeros([6, 3]));
      const opt = new AdaHessian({ learningRate: 0.3 });
      const generator = new RademacherGenerator(5);
      const loss = () => softmaxCrossEntropy(y, tf.matMul(x, w));
      let first = 0;
      let last = 0;
      for (let i = 0; i < 30; i++) {
        const est = hutchinsonDiagonal(loss, [w], { samples: 2, generator });
        if (i === 0) first = est.loss.dataSync()[0]!;
        last = est.loss.dataSync()[0]!;
        opt.applyGradientsWithHessian(
          [{ name: w.name, tensor: est.grads[0]! }],
          [{ name: w.name, tensor: est.diagonal[0]! }],
        );
        tf.dispose([est.loss, ...est.grads, ...est.diagonal]);
      }
      assert.ok(last < 0.3 * first, `loss ${first} -> ${last}`);
      tf.dispose([x, y, w]);
      opt.dispose();
    });
  });

  describe(`baselines on ${backend}`, () => {
    before(() => onBackend(backend));

    it('AdamW matches the formula (decoupled decay) for three steps', () => {
      const w = tf.variable(tf.tensor1d([1, -2, 0.5]), true, 'adamwFormula');
      const c = { lr: 0.1, beta1: 0.8, beta2: 0.9, eps: 1e-3, wd: 0.2 };
      const opt = new AdamW({
        learningRate: c.lr,
        beta1: c.beta1,
        beta2: c.beta2,
        epsilon: c.eps,
        weightDecay: c.wd,
      });
      const ref = { w: [1, -2, 0.5], m: [0, 0, 0], v: [0, 0, 0] };
      const grads = [
        [0.3, -1, 2],
        [1, 0.5, -0.25],
        [-2, 0, 1],
      ];
      grads.forEach((g, step) => {
        const t = step + 1;
        const gt = tf.tensor1d(g);
        opt.applyGradients({ adamwFormula: gt });
        gt.dispose();
        for (let i = 0; i < 3; i++) {
          ref.m[i] = c.beta1 * ref.m[i]! + (1 - c.beta1) * g[i]!;
          ref.v[i] = c.beta2 * ref.v[i]! + (1 - c.beta2) * g[i]! ** 2;
          const mHat = ref.m[i]! / (1 - c.beta1 ** t);
          const vHat = ref.v[i]! / (1 - c.beta2 ** t);
          ref.w[i] = ref.w[i]! - c.lr * (mHat / (Math.sqrt(vHat) + c.eps) + c.wd * ref.w[i]!);
        }
      });
      const got = w.dataSync();
      ref.w.forEach((r, i) => assert.ok(Math.abs(got[i]! - r) < 1e-5, `w[${i}] ${got[i]} vs ${r}`));
      w.dispose();
      opt.dispose();
    });

    it('AdamW with zero gradient still decays the weights; TF.js Adam does not', () => {
      const w = tf.variable(tf.tensor1d([1]), true, 'decayOnly');
      const opt = new AdamW({ learningRate: 0.1, weightDecay: 0.5 });
      const g = tf.tensor1d([0]);
      opt.applyGradients({ decayOnly: g });
      assert.ok(Math.abs(w.dataSync()[0]! - 0.95) < 1e-6);
      tf.dispose([w, g]);
      opt.dispose();
    });

    it('optimizerByName builds every optimizer, and each one lowers a quadratic', () => {
      for (const name of OPTIMIZER_NAMES) {
        const w = tf.variable(tf.tensor1d([2, -1]));
        const opt = optimizerByName(name, name === 'adahessian' ? 0.15 : 0.05);
        const f = () => tf.sum(tf.mul(tf.tensor1d([1, 4]), tf.square(w))) as tf.Scalar;
        const before = f().dataSync()[0]!;
        for (let i = 0; i < 20; i++) opt.minimize(f, false, [w]);
        const after = tf.tidy(() => f().dataSync()[0]!);
        assert.ok(after < 0.9 * before, `${name}: ${before} -> ${after}`);
        w.dispose();
        opt.dispose();
      }
      // tf.Optimizer's Symbol.hasInstance makes every optimizer an 'instanceof' any subclass:
      // compare the classes themselves.
      assert.equal(
        optimizerByName('adahessian', 0.2, { adahessian: { hessianEvery: 2 } }).constructor,
        AdaHessian,
      );
      assert.equal(optimizerByName('adamw', undefined, { weightDecay: 0.1 }).constructor, AdamW);
      assert.throws(
        () => optimizerByName('lbfgs'),
        /Unknown optimizer 'lbfgs'; expected one of adahessian, sgd/,
      );
      assert.throws(() => optimizerByName('adam', -1), /learning rate/);
    });
  });
}
