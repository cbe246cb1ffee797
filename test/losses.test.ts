import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  gradAndHvp,
  huberLoss,
  meanSquaredError,
  sigmoidCrossEntropy,
  softmaxCrossEntropy,
} from '../src/index.js';
import { maxAbs, maxAbsDiff, onBackend, TEST_BACKENDS } from './helpers.js';

// Fixed inputs; closed forms below are computed in float64 from the same numbers.
const LOGITS = [
  [1.5, -0.3, 0.2, 2.0],
  [-1.0, 0.4, 0.9, -2.2],
  [0.1, 0.1, -0.5, 1.3],
];
const ONE_HOT = [
  [0, 0, 0, 1],
  [0, 1, 0, 0],
  [1, 0, 0, 0],
];
const SOFT_LABELS = [
  [0.2, 0.9, 0.0, 1.0],
  [0.5, 0.1, 0.7, 0.3],
  [1.0, 0.0, 0.4, 0.6],
];
const PREDICTIONS = [
  [0.5, -1.2, 2.5, 0.1],
  [1.9, 0.3, -0.4, -2.6],
];
const TARGETS = [
  [0.2, 0.4, 0.1, 0.0],
  [0.0, 0.8, 0.3, 0.5],
];

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

function softmaxRow(row: number[]): number[] {
  const m = Math.max(...row);
  const e = row.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

function closeTo(actual: number, expected: number, rel = 2e-6): void {
  assert.ok(
    Math.abs(actual - expected) <= rel * Math.max(1, Math.abs(expected)),
    `${actual} vs ${expected}`,
  );
}

function value(t: tf.Tensor): number {
  assert.equal(t.rank, 0, 'a scalar');
  assert.equal(t.dtype, 'float32');
  const v = t.dataSync()[0]!;
  t.dispose();
  return v;
}

/** H v of lossOf(w) at w along v, with w a fresh variable. */
function hvpAt(lossOf: (w: tf.Tensor) => tf.Scalar, w0: number[][], v0: number[][]): tf.Tensor {
  const w = tf.variable(tf.tensor2d(w0));
  const v = tf.tensor2d(v0);
  const r = gradAndHvp(() => lossOf(w), [w], [v]);
  tf.dispose([w, v, r.loss, ...r.grads]);
  return r.hvp[0]!;
}

for (const backend of TEST_BACKENDS) {
  describe(`losses on ${backend}`, () => {
    before(() => onBackend(backend));

    it('softmaxCrossEntropy is the mean over examples of -sum labels log softmax', () => {
      const expected = mean(
        LOGITS.map((row, i) => {
          const p = softmaxRow(row);
          return -ONE_HOT[i]!.reduce((a, l, c) => a + l * Math.log(p[c]!), 0);
        }),
      );
      closeTo(value(softmaxCrossEntropy(tf.tensor2d(ONE_HOT), tf.tensor2d(LOGITS))), expected);
      // Probability-distribution labels, and the same value as tf.losses' default reduction.
      const soft = tf.tensor2d(SOFT_LABELS.map((r) => softmaxRow(r)));
      const ours = value(softmaxCrossEntropy(soft, tf.tensor2d(LOGITS)));
      const stock = value(tf.losses.softmaxCrossEntropy(soft, tf.tensor2d(LOGITS)));
      closeTo(ours, stock, 1e-5);
      soft.dispose();
    });

    it('softmaxCrossEntropy treats every axis but the last as examples', () => {
      const logits3 = tf.tensor3d([LOGITS, LOGITS.map((r) => r.map((x) => -x))]);
      const labels3 = tf.tensor3d([ONE_HOT, ONE_HOT]);
      const flat = value(
        softmaxCrossEntropy(tf.reshape(labels3, [6, 4]), tf.reshape(logits3, [6, 4])),
      );
      closeTo(value(softmaxCrossEntropy(labels3, logits3)), flat);
      tf.dispose([logits3, labels3]);
    });

    it('softmaxCrossEntropy is finite and exact for huge logits', () => {
      const logits = tf.tensor2d([
        [1000, 0, -1000],
        [-500, 500, 499],
      ]);
      const labels = tf.tensor2d([
        [0, 1, 0],
        [0, 0, 1],
      ]);
      // Row 1: -log softmax = 1000. Row 2: log(1 + e^-1) + 1 - 0 ... = 1 + log(1 + e^-1).
      closeTo(
        value(softmaxCrossEntropy(labels, logits)),
        (1000 + 1 + Math.log1p(Math.exp(-1))) / 2,
      );
      tf.dispose([logits, labels]);
    });

    it('sigmoidCrossEntropy is the element mean of -z log s(x) - (1-z) log(1-s(x))', () => {
      const perElement = LOGITS.flatMap((row, i) =>
        row.map((x, c) => {
          const z = SOFT_LABELS[i]![c]!;
          return -z * Math.log(sigmoid(x)) - (1 - z) * Math.log(1 - sigmoid(x));
        }),
      );
      const labels = tf.tensor2d(SOFT_LABELS);
      const logits = tf.tensor2d(LOGITS);
      closeTo(value(sigmoidCrossEntropy(labels, logits)), mean(perElement));
      closeTo(
        value(sigmoidCrossEntropy(labels, logits)),
        value(tf.losses.sigmoidCrossEntropy(labels, logits)),
        1e-5,
      );
      tf.dispose([labels, logits]);
    });

    it('sigmoidCrossEntropy is finite and exact for huge logits', () => {
      const logits = tf.tensor1d([100, -100, 100, -100]);
      const labels = tf.tensor1d([1, 1, 0, 0]);
      // Losses: ~e^-100, 100, 100, ~e^-100.
      closeTo(value(sigmoidCrossEntropy(labels, logits)), 200 / 4);
      tf.dispose([logits, labels]);
    });

    it('meanSquaredError and huberLoss match their closed forms and tf.losses', () => {
      const errors = PREDICTIONS.flatMap((row, i) => row.map((p, c) => p - TARGETS[i]![c]!));
      const labels = tf.tensor2d(TARGETS);
      const predictions = tf.tensor2d(PREDICTIONS);
      closeTo(value(meanSquaredError(labels, predictions)), mean(errors.map((e) => e * e)));
      closeTo(
        value(meanSquaredError(labels, predictions)),
        value(tf.losses.meanSquaredError(labels, predictions)),
        1e-5,
      );
      for (const delta of [1, 0.5, 2.5]) {
        const huber = (e: number) =>
          Math.abs(e) <= delta ? 0.5 * e * e : delta * (Math.abs(e) - 0.5 * delta);
        closeTo(value(huberLoss(labels, predictions, delta)), mean(errors.map(huber)));
        closeTo(
          value(huberLoss(labels, predictions, delta)),
          value(tf.losses.huberLoss(labels, predictions, undefined, delta)),
          1e-5,
        );
      }
      closeTo(value(huberLoss(labels, predictions)), value(huberLoss(labels, predictions, 1)));
      tf.dispose([labels, predictions]);
    });

    it('softmaxCrossEntropy has the exact Hessian (diag(p) - p p^T) / n per row', () => {
      const labels = tf.tensor2d(ONE_HOT);
      const v = [
        [0.3, -1.0, 0.5, 0.2],
        [1.1, 0.0, -0.4, 0.7],
        [-0.6, 0.9, 0.8, -0.2],
      ];
      const hv = hvpAt((w) => softmaxCrossEntropy(labels, w), LOGITS, v);
      const exact = tf.tensor2d(
        LOGITS.map((row, i) => {
          const p = softmaxRow(row);
          const pv = p.reduce((a, pc, c) => a + pc * v[i]![c]!, 0);
          return p.map((pc, c) => (pc * v[i]![c]! - pc * pv) / LOGITS.length);
        }),
      );
      assert.ok(maxAbsDiff(hv, exact) <= 1e-5 * maxAbs(exact) + 1e-7, `${maxAbsDiff(hv, exact)}`);
      tf.dispose([labels, hv, exact]);
    });

    it('sigmoidCrossEntropy has the exact Hessian diag(s (1 - s)) / n', () => {
      const labels = tf.tensor2d(SOFT_LABELS);
      const v = LOGITS.map((row) => row.map((x, c) => Math.cos(3 * x + c)));
      const n = LOGITS.length * LOGITS[0]!.length;
      const hv = hvpAt((w) => sigmoidCrossEntropy(labels, w), LOGITS, v);
      const exact = tf.tensor2d(
        LOGITS.map((row, i) => row.map((x, c) => (sigmoid(x) * (1 - sigmoid(x)) * v[i]![c]!) / n)),
      );
      assert.ok(maxAbsDiff(hv, exact) <= 1e-5 * maxAbs(exact) + 1e-7, `${maxAbsDiff(hv, exact)}`);
      tf.dispose([labels, hv, exact]);
    });

    it('meanSquaredError has Hessian 2/n; huberLoss 1/n inside the band, 0 outside', () => {
      const labels = tf.tensor2d(TARGETS);
      const v = PREDICTIONS.map((row) => row.map((_, c) => c - 1.5));
      const n = PREDICTIONS.length * PREDICTIONS[0]!.length;
      const mse = hvpAt((w) => meanSquaredError(labels, w), PREDICTIONS, v);
      const mseExact = tf.mul(tf.tensor2d(v), 2 / n);
      assert.ok(maxAbsDiff(mse, mseExact) <= 1e-6);
      // delta 1: the errors are 0.3 -1.6 2.4 0.1 / 1.9 -0.5 -0.7 -3.1, none within 0.1 of the kink.
      const huber = hvpAt((w) => huberLoss(labels, w, 1), PREDICTIONS, v);
      const huberExact = tf.tensor2d(
        PREDICTIONS.map((row, i) =>
          row.map((p, c) => (Math.abs(p - TARGETS[i]![c]!) < 1 ? v[i]![c]! / n : 0)),
        ),
      );
      assert.ok(maxAbsDiff(huber, huberExact) <= 1e-6, `${maxAbsDiff(huber, huberExact)}`);
      tf.dispose([labels, mse, mseExact, huber, huberExact]);
    });

    it('rejects bad input with errors that name the problem', () => {
      const a = tf.zeros([2, 3]);
      const b = tf.zeros([3, 2]);
      assert.throws(
        () => softmaxCrossEntropy(a, b),
        /softmaxCrossEntropy: labels has shape \[2, 3\] but logits has shape \[3, 2\]/,
      );
      assert.throws(() => meanSquaredError(a, b), /meanSquaredError: .*must match/);
      assert.throws(() => huberLoss(a, a, 0), /delta must be a finite number > 0, got 0/);
      assert.throws(() => huberLoss(a, a, NaN), /delta must be/);
      assert.throws(
        () => sigmoidCrossEntropy([1, 2] as unknown as tf.Tensor, a),
        /labels must be a tf.Tensor/,
      );
      const s = tf.scalar(1);
      assert.throws(() => softmaxCrossEntropy(s, s), /class axis/);
      const empty = tf.zeros([0, 3]);
      assert.throws(() => meanSquaredError(empty, empty), /empty/);
      tf.dispose([a, b, s, empty]);
    });

    it('leaks no tensors', () => {
      const labels = tf.tensor2d(ONE_HOT);
      const logits = tf.tensor2d(LOGITS);
      const losses = [softmaxCrossEntropy, sigmoidCrossEntropy, meanSquaredError, huberLoss];
      losses.forEach((f) => f(labels, logits).dispose());
      const before = tf.memory().numTensors;
      for (const f of losses) f(labels, logits).dispose();
      assert.equal(tf.memory().numTensors, before);
      tf.dispose([labels, logits]);
    });
  });
}
