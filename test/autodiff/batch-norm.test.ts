/**
 * batchNormTraining (src/autodiff/gradients/batch-norm.ts) and ResNet-20's batch-norm layer
 * (src/models/resnet-batch-norm.ts): values, gradients and Hessian-vector products equal stock
 * TF.js's tf.moments + tf.batchNorm to float32 rounding, the coverage case passes against finite
 * differences, nothing leaks, bad input gets one line.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { gradAndHvp } from '../../src/index.js';
import { batchNormTraining } from '../../src/autodiff/gradients/batch-norm.js';
import { nnCases } from '../../src/autodiff/cases/nn.js';
import { runCase } from '../../src/autodiff/check.js';
import { ResNetBatchNormalization } from '../../src/models/resnet-batch-norm.js';
import { maxAbs, maxAbsDiff, onBackend, TEST_BACKENDS } from '../helpers.js';

const EPSILON = 1e-3;

function stock(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D) {
  const axes = x.shape.slice(0, -1).map((_, i) => i);
  const { mean, variance } = tf.moments(x, axes);
  return {
    normed: tf.batchNorm(x, mean, variance, beta, gamma, EPSILON),
    mean: mean as tf.Tensor1D,
    variance: variance as tf.Tensor1D,
  };
}

/** max |a - b| / max |b|: float32 rounding gives ~1e-7..1e-5 here, a wrong term ~1e-1. */
function relDiff(a: tf.Tensor, b: tf.Tensor): number {
  return maxAbsDiff(a, b) / Math.max(maxAbs(b), 1e-30);
}

for (const backend of TEST_BACKENDS) {
  describe(`batchNormTraining on ${backend}`, () => {
    before(() => onBackend(backend));

    // Not centered and not unit scale, so that the moments matter; 3 channels, rank 4.
    const make = () => ({
      x: tf.tidy(() => tf.add(tf.mul(tf.randomNormal([4, 5, 6, 3], 0, 1, 'float32', 1), 2), 0.7)),
      gamma: tf.tidy(() => tf.add(1, tf.randomNormal([3], 0, 0.3, 'float32', 2))) as tf.Tensor1D,
      beta: tf.randomNormal([3], 0, 0.3, 'float32', 3) as tf.Tensor1D,
      weights: tf.randomNormal([4, 5, 6, 3], 0, 1, 'float32', 4),
    });

    it('normalizes and returns the moments as tf.moments + tf.batchNorm do', () => {
      const { x, gamma, beta, weights } = make();
      const before = tf.memory().numTensors;
      const got = batchNormTraining(x, gamma, beta, EPSILON);
      const want = stock(x, gamma, beta);
      assert.ok(relDiff(got.normed, want.normed) < 1e-5, 'normed');
      assert.ok(relDiff(got.mean, want.mean) < 1e-5, 'mean');
      assert.ok(relDiff(got.variance, want.variance) < 1e-5, 'variance');
      tf.dispose([got.normed, got.mean, got.variance, want.normed, want.mean, want.variance]);
      assert.equal(tf.memory().numTensors, before);
      tf.dispose([x, gamma, beta, weights]);
    });

    it("has stock TF.js's gradients in x, gamma and beta", () => {
      const { x, gamma, beta, weights } = make();
      const head = (y: tf.Tensor) => tf.sum(tf.mul(tf.sin(y), weights)) as tf.Scalar;
      const got = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
        head(batchNormTraining(a, g as tf.Tensor1D, b as tf.Tensor1D, EPSILON).normed),
      )([x, gamma, beta]);
      const want = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
        head(stock(a, g as tf.Tensor1D, b as tf.Tensor1D).normed),
      )([x, gamma, beta]);
      ['x', 'gamma', 'beta'].forEach((name, i) => {
        const rel = relDiff(got[i]!, want[i]!);
        assert.ok(rel < 2e-5, `d/d${name}: relative difference ${rel}`);
      });
      tf.dispose([...got, ...want, x, gamma, beta, weights]);
    });

    it("has stock TF.js's Hessian-vector products, and leaks nothing", () => {
      // A convolution in front, so that the product goes through x's dependence on the weights.
      const input = tf.randomNormal([4, 5, 6, 2], 0, 1, 'float32', 5) as tf.Tensor4D;
      const filter = tf.variable(
        tf.randomNormal([3, 3, 2, 3], 0, 0.5, 'float32', 6) as tf.Tensor4D,
      );
      const gamma = tf.variable(
        tf.add(1, tf.randomNormal([3], 0, 0.3, 'float32', 7)) as tf.Tensor1D,
      );
      const beta = tf.variable(tf.randomNormal([3], 0, 0.3, 'float32', 8) as tf.Tensor1D);
      const weights = tf.randomNormal([4, 5, 6, 3], 0, 1, 'float32', 9);
      const vars = [filter, gamma, beta];
      const vector = vars.map((v, i) => tf.randomNormal(v.shape, 0, 1, 'float32', 10 + i));
      const loss = (norm: typeof stock) => () =>
        tf.sum(
          tf.mul(tf.sin(norm(tf.conv2d(input, filter, 1, 'same'), gamma, beta).normed), weights),
        ) as tf.Scalar;
      const fixed = (x: tf.Tensor, g: tf.Tensor1D, b: tf.Tensor1D) =>
        batchNormTraining(x, g, b, EPSILON);
      const before = tf.memory().numTensors;
      const got = gradAndHvp(loss(fixed), vars, vector);
      tf.dispose(got.loss);
      tf.dispose([...got.grads, ...got.hvp]);
      assert.equal(tf.memory().numTensors, before, 'no tensors left by the product');
      const ours = gradAndHvp(loss(fixed), vars, vector);
      const theirs = gradAndHvp(loss(stock), vars, vector);
      vars.forEach((_, i) => {
        const g = relDiff(ours.grads[i]!, theirs.grads[i]!);
        const h = relDiff(ours.hvp[i]!, theirs.hvp[i]!);
        assert.ok(g < 2e-5, `gradient of ${i}: ${g}`);
        assert.ok(h < 1e-4, `H v of ${i}: ${h}`);
      });
      tf.dispose([ours.loss, ...ours.grads, ...ours.hvp, theirs.loss, ...theirs.grads]);
      tf.dispose([...theirs.hvp, ...vars, ...vector, input, weights]);
    });

    it('passes its coverage case against finite differences', () => {
      const c = nnCases.find((k) => k.name.startsWith('batch norm, training (compact'))!;
      const result = runCase(c, backend, 1e-2);
      assert.equal(result.error, undefined);
      assert.ok(result.relError < 1e-2, `relative error ${result.relError}`);
      assert.ok(result.kernels.includes('adahessianBatchNormTraining'));
      assert.ok(!result.kernels.includes('FusedBatchNorm'), 'the stock gradient is not used');
    });

    it('names the problem with bad input', () => {
      const x = tf.zeros([2, 3]);
      const [two, three] = [tf.ones([2]) as tf.Tensor1D, tf.ones([3]) as tf.Tensor1D];
      assert.throws(
        () => batchNormTraining(x, two, three, EPSILON),
        /^Error: batchNormTraining: gamma must have shape \[3\] \(x's channels\), got \[2\]\.$/,
      );
      assert.throws(
        () => batchNormTraining(x, three, three, 0),
        /^Error: batchNormTraining: epsilon must be positive, got 0\.$/,
      );
      tf.dispose([x, two, three]);
    });
  });

  describe(`ResNetBatchNormalization on ${backend}`, () => {
    before(() => onBackend(backend));

    it('trains, updates its moving statistics and infers as the stock layer', () => {
      const args = { axis: -1, momentum: 0.9, epsilon: EPSILON };
      const ours = new ResNetBatchNormalization(args);
      const theirs = tf.layers.batchNormalization(args);
      const x = tf.tidy(() =>
        tf.add(tf.mul(tf.randomNormal([4, 5, 6, 3], 0, 1, 'float32', 1), 2), 1),
      );
      ours.build(x.shape);
      theirs.build(x.shape);
      // Non-trivial gamma and beta in both.
      const weights = [
        tf.tensor1d([1.5, 0.5, -1]),
        tf.tensor1d([0.1, -0.2, 0.3]),
        tf.zeros([3]),
        tf.ones([3]),
      ];
      ours.setWeights(weights);
      theirs.setWeights(weights);
      const a = ours.apply(x, { training: true }) as tf.Tensor;
      const b = theirs.apply(x, { training: true }) as tf.Tensor;
      assert.ok(relDiff(a, b) < 1e-5, 'training output');
      const [, , oursMean, oursVar] = ours.getWeights();
      const [, , theirMean, theirVar] = theirs.getWeights();
      assert.ok(relDiff(oursMean!, theirMean!) < 1e-5, 'moving mean');
      assert.ok(relDiff(oursVar!, theirVar!) < 1e-5, 'moving variance');
      assert.ok(maxAbsDiff(theirMean!, weights[2]!) > 0.01, 'the moving mean moved');
      const c = ours.apply(x) as tf.Tensor;
      const d = theirs.apply(x) as tf.Tensor;
      // The stock code, with moving statistics equal to float32 rounding.
      assert.ok(relDiff(c, d) < 1e-5, 'inference output');
      assert.equal(ours.getClassName(), 'BatchNormalization', 'saves as the stock layer');
      tf.dispose([x, a, b, c, d, ...weights]);
      // Layers not yet in a model refuse dispose(); free their variables.
      for (const w of [...ours.weights, ...theirs.weights]) w.dispose();
    });
  });
}
