/** Problems with known answers (ALGORITHMS.md section 3, "Toy checks"). */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { AdaHessian, type AdaHessianConfig } from '../../src/index.js';
import { onBackend, TEST_BACKENDS } from '../helpers.js';
import { lcg } from './reference.js';

function runFrom(
  start: number[],
  loss: (w: tf.Variable) => tf.Scalar,
  config: AdaHessianConfig,
  steps: number,
): number[] {
  const w = tf.variable(tf.tensor1d(start));
  const opt = new AdaHessian(config);
  for (let i = 0; i < steps; i++) opt.minimize(() => loss(w), false, [w]);
  const out = Array.from(w.dataSync());
  w.dispose();
  opt.dispose();
  return out;
}

/** (1 - x)^2 + (y - x^2)^2: the form used by the public PyTorch test suite (b = 1, not 100). */
const rosenbrock = (w: tf.Variable): tf.Scalar =>
  tf.tidy(() => {
    const [x, y] = tf.unstack(w) as [tf.Scalar, tf.Scalar];
    return tf.add(tf.square(tf.sub(1, x)), tf.square(tf.sub(y, tf.square(x)))) as tf.Scalar;
  });

const beale = (w: tf.Variable): tf.Scalar =>
  tf.tidy(() => {
    const [x, y] = tf.unstack(w) as [tf.Scalar, tf.Scalar];
    return tf.addN([
      tf.square(tf.add(tf.sub(1.5, x), tf.mul(x, y))),
      tf.square(tf.add(tf.sub(2.25, x), tf.mul(x, tf.square(y)))),
      tf.square(tf.add(tf.sub(2.625, x), tf.mul(x, tf.mul(y, tf.square(y))))),
    ]) as tf.Scalar;
  });

for (const backend of TEST_BACKENDS) {
  describe(`AdaHessian on toy problems, ${backend}`, () => {
    before(() => onBackend(backend));

    it('x^2 + 10 y^2: one step to the minimum (betas 0, k = 1, lr 1, exact diagonal)', () => {
      for (const start of [
        [3, -2],
        [-0.5, 7],
        [100, 0.01],
      ]) {
        const w = tf.variable(tf.tensor1d(start));
        const opt = new AdaHessian({ learningRate: 1, beta1: 0, beta2: 0, epsilon: 0 });
        const g = tf.tensor1d([2 * start[0]!, 20 * start[1]!]);
        const diag = tf.tensor1d([2, 20]);
        opt.applyGradientsWithHessian({ [w.name]: g }, { [w.name]: diag });
        const [x, y] = w.dataSync();
        assert.ok(Math.abs(x!) < 1e-6 && Math.abs(y!) < 1e-6, `from [${start}] to [${x}, ${y}]`);
        tf.dispose([w, g, diag]);
        opt.dispose();
      }
    });

    it('x^2 + 10 y^2 with minimize(): the Hutchinson diagonal is exact here, one step lands', () => {
      // H is diagonal, so z * (H z) = diag(H) for every probe.
      const out = runFrom(
        [3, -2],
        (w) => tf.tidy(() => tf.sum(tf.mul(tf.tensor1d([1, 10]), tf.square(w))) as tf.Scalar),
        { learningRate: 1, beta1: 0, beta2: 0, epsilon: 0, seed: 1 },
        1,
      );
      assert.ok(Math.hypot(out[0]!, out[1]!) < 1e-6, `landed at [${out}]`);
    });

    it('Rosenbrock from (1.5, 1.5) reaches (1, 1) within 1e-3 (lr 0.15, k 0.6, 900 steps)', () => {
      const [x, y] = runFrom(
        [1.5, 1.5],
        rosenbrock,
        { learningRate: 0.15, hessianPower: 0.6, seed: 0 },
        900,
      );
      assert.ok(Math.abs(x! - 1) < 1e-3 && Math.abs(y! - 1) < 1e-3, `ended at (${x}, ${y})`);
    });

    it('Beale from (1.5, 1.5) reaches (3, 0.5) within 1e-3 (lr 0.15, k 0.6, 900 steps)', () => {
      const [x, y] = runFrom(
        [1.5, 1.5],
        beale,
        { learningRate: 0.15, hessianPower: 0.6, seed: 0 },
        900,
      );
      assert.ok(Math.abs(x! - 3) < 1e-3 && Math.abs(y! - 0.5) < 1e-3, `ended at (${x}, ${y})`);
    });
  });
}

describe(`least squares: AdaHessian vs Adam at each one's best learning rate (${TEST_BACKENDS[0]})`, () => {
  before(() => onBackend(TEST_BACKENDS[0]!));

  it('AdaHessian needs fewer steps to get within 1e-3 (relative) of the optimum', (t) => {
    // L = ||A w - b||^2 / n with badly scaled columns (scales 0.1 .. 10): a diagonal-ish H
    // whose entries span four orders of magnitude, where a curvature-aware step should pay off.
    const n = 64;
    const d = 8;
    const rand = lcg(5);
    const scales = Array.from({ length: d }, (_, j) => 10 ** (-1 + (2 * j) / (d - 1)));
    const Adata = Array.from({ length: n * d }, (_, k) => 2 * rand() * scales[k % d]!);
    const bdata = Array.from({ length: n }, () => 2 * rand());
    const A = tf.tensor2d(Adata, [n, d]);
    const b = tf.tensor2d(bdata, [n, 1]);
    const lossOf = (w: tf.Tensor) =>
      tf.tidy(() => tf.div(tf.sum(tf.square(tf.sub(tf.matMul(A, w), b))), n) as tf.Scalar);
    const optimum = leastSquaresMinimum(Adata, bdata, n, d);
    const start = tf.zeros([d, 1]);
    const lossStart = lossOf(start).dataSync()[0]!;
    const target = optimum + 1e-3 * (lossStart - optimum);
    const maxSteps = 400;

    const stepsToTarget = (opt: tf.Optimizer): number => {
      const w = tf.variable(start.clone());
      let steps = maxSteps + 1;
      for (let t = 1; t <= maxSteps; t++) {
        const loss = opt.minimize(() => lossOf(w), true, [w])!;
        const value = loss.dataSync()[0]!;
        loss.dispose();
        if (value <= target) {
          steps = t; // the loss before step t was already at target
          break;
        }
      }
      w.dispose();
      opt.dispose();
      return steps;
    };
    const best = (lrs: number[], make: (lr: number) => tf.Optimizer) =>
      Math.min(...lrs.map((lr) => stepsToTarget(make(lr))));
    const grid = [0.01, 0.03, 0.1, 0.3, 1];
    const adahessianSteps = best(grid, (lr) => new AdaHessian({ learningRate: lr, seed: 2 }));
    const adamSteps = best(grid, (lr) => tf.train.adam(lr));
    t.diagnostic(`steps to target: AdaHessian ${adahessianSteps}, Adam ${adamSteps}`);
    assert.ok(
      adahessianSteps <= maxSteps,
      `AdaHessian did not reach the target in ${maxSteps} steps`,
    );
    assert.ok(
      adahessianSteps < adamSteps,
      `AdaHessian ${adahessianSteps} steps vs Adam ${adamSteps} steps`,
    );
    tf.dispose([A, b, start]);
  });
});

/** min_w ||A w - b||^2 / n by the normal equations in float64 (Gaussian elimination). */
function leastSquaresMinimum(A: number[], b: number[], n: number, d: number): number {
  const M = Array.from({ length: d }, (_, i) =>
    Array.from({ length: d + 1 }, (_, j) => {
      let s = 0;
      for (let k = 0; k < n; k++) s += A[k * d + i]! * (j < d ? A[k * d + j]! : b[k]!);
      return s;
    }),
  );
  for (let c = 0; c < d; c++) {
    const p = M.slice(c).reduce(
      (best, row, k) => (Math.abs(row[c]!) > Math.abs(M[best]![c]!) ? k + c : best),
      c,
    );
    [M[c], M[p]] = [M[p]!, M[c]!];
    for (let r = 0; r < d; r++) {
      if (r === c) continue;
      const f = M[r]![c]! / M[c]![c]!;
      for (let j = c; j <= d; j++) M[r]![j]! -= f * M[c]![j]!;
    }
  }
  const w = M.map((row, i) => row[d]! / row[i]!);
  let loss = 0;
  for (let k = 0; k < n; k++) {
    let r = -b[k]!;
    for (let j = 0; j < d; j++) r += A[k * d + j]! * w[j]!;
    loss += r * r;
  }
  return loss / n;
}
