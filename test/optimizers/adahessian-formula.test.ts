/**
 * The optimizer's update against the plain-number formula of ALGORITHMS.md section 3, on a
 * sum of quadratics 0.5 x^T A x + c^T x (one per variable, A symmetric, so H z = A z exactly).
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  AdaHessian,
  RademacherGenerator,
  hutchinsonDiagonal,
  type AdaHessianConfig,
  type SpatialAveraging,
} from '../../src/index.js';
import { onBackend, TEST_BACKENDS } from '../helpers.js';
import { lcg, matVec, refStep, type Mode, type RefConfig, type RefVar } from './reference.js';

const SHAPES = [[3], [4, 3], [2, 2, 3, 2], [3, 3, 2, 1]];

interface Problem {
  vars: tf.Variable[];
  A: number[][];
  c: number[][];
  lossFn: () => tf.Scalar;
  dispose(): void;
}

function makeProblem(seed: number): Problem {
  const rand = lcg(seed);
  const A: number[][] = [];
  const c: number[][] = [];
  const vars = SHAPES.map((shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const B = Array.from({ length: n * n }, rand);
    A.push(B.map((_, k) => B[k]! + B[(k % n) * n + Math.floor(k / n)]!)); // B + B^T
    c.push(Array.from({ length: n }, rand));
    return tf.variable(
      tf.tensor(
        Array.from({ length: n }, () => 2 * rand()),
        shape,
      ),
    );
  });
  const At = A.map((a, i) => tf.tensor2d(a, [c[i]!.length, c[i]!.length]));
  const ct = c.map((ci) => tf.tensor2d(ci, [ci.length, 1]));
  const lossFn = () =>
    tf.tidy(
      () =>
        tf.addN(
          vars.map((v, i) => {
            const x = tf.reshape(v, [v.size, 1]);
            return tf.add(
              tf.mul(0.5, tf.sum(tf.mul(x, tf.matMul(At[i]!, x)))),
              tf.sum(tf.mul(ct[i]!, x)),
            );
          }),
        ) as tf.Scalar,
    );
  return { vars, A, c, lossFn, dispose: () => tf.dispose([...vars, ...At, ...ct]) };
}

function modeOf(shape: number[], averaging: SpatialAveraging): Mode {
  const defaults: Record<number, Mode> = { 3: 'spatial', 4: 'spatial', 5: 'spatial' };
  return averaging[shape.length] ?? defaults[shape.length] ?? 'none';
}

function closeTo(actual: ArrayLike<number>, expected: number[], what: string): void {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) / (1 + Math.abs(expected[i]!)));
  }
  assert.ok(worst < 2e-5, `${what}: worst relative difference ${worst}`);
}

const AVERAGINGS: [string, SpatialAveraging][] = [
  ['default (conv spatial, dense/bias none)', {}],
  ['blocks on dense, none on conv', { 2: { blockSize: 3 }, 4: 'none' }],
  ['blocks on bias', { 1: { blockSize: 2 } }],
];

for (const backend of TEST_BACKENDS) {
  describe(`AdaHessian update = ALGORITHMS.md formula on ${backend}`, () => {
    before(() => onBackend(backend));

    for (const k of [1, 0.5]) {
      for (const weightDecay of [0, 0.01]) {
        for (const [label, spatialAveraging] of AVERAGINGS) {
          it(`minimize(): k=${k}, weightDecay=${weightDecay}, ${label}`, () => {
            checkMinimize({ hessianPower: k, weightDecay, spatialAveraging, seed: 11 }, 3);
          });
        }
      }
    }

    it('minimize(): 3 probes per estimate', () => {
      checkMinimize({ samples: 3, seed: 5 }, 3);
    });

    it('minimize(): delayed Hessian (every 2, one warm-up step) follows the documented rule', () => {
      checkMinimize({ hessianEvery: 2, hessianWarmupSteps: 1, seed: 3, beta2: 0.9 }, 6);
    });

    it('applyGradientsWithHessian(): injected gradients and diagonal, then a step without one', () => {
      const config: RefConfig = {
        lr: 0.3,
        beta1: 0.8,
        beta2: 0.95,
        eps: 1e-3,
        weightDecay: 0.02,
        k: 0.7,
      };
      const opt = new AdaHessian({
        learningRate: config.lr,
        beta1: config.beta1,
        beta2: config.beta2,
        epsilon: config.eps,
        weightDecay: config.weightDecay,
        hessianPower: config.k,
        spatialAveraging: { 2: { blockSize: 2 } },
      });
      const rand = lcg(99);
      const vars = SHAPES.map((s) =>
        tf.variable(tf.tensor(Array.from({ length: s.reduce((a, b) => a * b) }, rand), s)),
      );
      const ref: RefVar[] = vars.map((v, i) => ({
        shape: SHAPES[i]!,
        w: Array.from(v.dataSync()),
        m: new Array(v.size).fill(0),
        v: new Array(v.size).fill(0),
        mode: modeOf(SHAPES[i]!, { 2: { blockSize: 2 } }),
      }));
      for (let t = 1; t <= 3; t++) {
        const g = vars.map((v) => Array.from({ length: v.size }, rand));
        const d = t === 2 ? null : vars.map((v) => Array.from({ length: v.size }, rand));
        const named = (xs: number[][]) =>
          vars.map((v, i) => ({ name: v.name, tensor: tf.tensor(xs[i]!, v.shape) }));
        const gt = named(g);
        const dt = d ? named(d) : null;
        opt.applyGradientsWithHessian(gt, dt);
        tf.dispose([...gt.map((x) => x.tensor), ...(dt ?? []).map((x) => x.tensor)]);
        ref.forEach((r, i) => refStep(r, g[i]!, d ? d[i]! : null, t, t === 3 ? 2 : 1, config));
      }
      vars.forEach((v, i) => closeTo(v.dataSync(), ref[i]!.w, `variable ${i}`));
      assert.equal(opt.hessianUpdateCount, 2);
      tf.dispose(vars);
      opt.dispose();
    });

    it('hutchinsonDiagonal with injected probes gives z * (H z) exactly', () => {
      const p = makeProblem(4);
      const rand = lcg(8);
      const z = p.vars.map((v) => Array.from({ length: v.size }, () => (rand() > 0 ? 1 : -1)));
      const probes = [p.vars.map((v, i) => tf.tensor(z[i]!, v.shape))];
      const est = hutchinsonDiagonal(p.lossFn, p.vars, { probes });
      est.diagonal.forEach((d, i) => {
        const Hz = matVec(p.A[i]!, z[i]!);
        closeTo(
          d.dataSync(),
          Hz.map((h, j) => h * z[i]![j]!),
          `diagonal ${i}`,
        );
      });
      tf.dispose([est.loss, ...est.grads, ...est.diagonal, ...probes.flat()]);
      p.dispose();
    });
  });
}

/** Runs `steps` minimize() calls and the reference side by side; compares the weights. */
function checkMinimize(config: AdaHessianConfig, steps: number): void {
  const p = makeProblem(21);
  const opt = new AdaHessian(config);
  const c = opt.config;
  const refConfig: RefConfig = {
    lr: c.learningRate as number,
    beta1: c.beta1,
    beta2: c.beta2,
    eps: c.epsilon,
    weightDecay: c.weightDecay,
    k: c.hessianPower,
  };
  const ref: RefVar[] = p.vars.map((v, i) => ({
    shape: SHAPES[i]!,
    w: Array.from(v.dataSync()),
    m: new Array(v.size).fill(0),
    v: new Array(v.size).fill(0),
    mode: modeOf(SHAPES[i]!, c.spatialAveraging),
  }));
  const probes = new RademacherGenerator(c.seed);
  let n = 0;
  for (let t = 1; t <= steps; t++) {
    const due = t <= c.hessianWarmupSteps || (t - c.hessianWarmupSteps - 1) % c.hessianEvery === 0;
    assert.equal(opt.isHessianDue(), due, `Hessian due at step ${t}`);
    const g = ref.map((r, i) => matVec(p.A[i]!, r.w).map((x, j) => x + p.c[i]![j]!));
    let diag: number[][] | null = null;
    if (due) {
      n++;
      diag = ref.map((r) => new Array(r.w.length).fill(0));
      for (let s = 0; s < c.samples; s++) {
        ref.forEach((r, i) => {
          const z = Array.from(probes.signs(r.w.length));
          const Hz = matVec(p.A[i]!, z);
          z.forEach((zj, j) => (diag![i]![j]! += (zj * Hz[j]!) / c.samples));
        });
      }
    }
    ref.forEach((r, i) => refStep(r, g[i]!, diag ? diag[i]! : null, t, n, refConfig));
    opt.minimize(p.lossFn, false, p.vars);
  }
  assert.equal(opt.hessianUpdateCount, n);
  p.vars.forEach((v, i) => closeTo(v.dataSync(), ref[i]!.w, `variable of shape [${SHAPES[i]}]`));
  opt.dispose();
  p.dispose();
}
