/**
 * The playground's race job (web/src/jobs/race.ts): its functions, the exact and Hutchinson
 * diagonals it shows, and the race's bookkeeping, on cpu (the backend the page runs it on).
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../../src/index.js';
import { FUNCTION_NAMES, FUNCTIONS } from '../../../web/src/jobs/functions.js';
import {
  checkRaceSettings,
  compareDiagonal,
  defaultRaceSettings,
  Race,
  RACERS,
  runRace,
} from '../../../web/src/jobs/race.js';

/** d2f/dx2 and d2f/dy2 by central differences of the float64 formula, and d2f/dxdy. */
function finiteDifferenceHessian(f: (x: number, y: number) => number, x: number, y: number) {
  const h = 1e-3;
  const fxx = (f(x + h, y) - 2 * f(x, y) + f(x - h, y)) / (h * h);
  const fyy = (f(x, y + h) - 2 * f(x, y) + f(x, y - h)) / (h * h);
  const fxy = (f(x + h, y + h) - f(x + h, y - h) - f(x - h, y + h) + f(x - h, y - h)) / (4 * h * h);
  return { fxx, fyy, fxy };
}

describe('playground race job', () => {
  before(() => useBackend('cpu'));

  for (const name of FUNCTION_NAMES) {
    const fn = FUNCTIONS[name];
    it(`${name}: the tensor function equals the plain one, and the exact diagonal the finite differences`, () => {
      for (const point of [fn.start, [0.3, -0.7] as [number, number], fn.minima[0]!]) {
        const value = tf.tidy(() => fn.tensor(tf.tensor1d(point)).dataSync()[0]!);
        const plain = fn.value(...point);
        assert.ok(
          Math.abs(value - plain) <= 1e-5 * Math.max(1, Math.abs(plain)),
          `f(${point}) ${value} vs ${plain}`,
        );
        const { exact } = compareDiagonal(name, point, 1, 0);
        const fd = finiteDifferenceHessian(fn.value, ...point);
        for (const [got, want] of [
          [exact[0], fd.fxx],
          [exact[1], fd.fyy],
        ] as const) {
          assert.ok(
            Math.abs(got - want) <= 1e-3 * Math.max(1, Math.abs(want)),
            `${name} at ${point}: exact ${got}, finite differences ${want}`,
          );
        }
      }
    });
  }

  it("Hutchinson's running estimate is off the exact diagonal by H12 times the mean of z1 z2", () => {
    // For 2-D, z * (Hz) = (H11 + z1 z2 H12, H22 + z1 z2 H12): both entries are off by the same
    // multiple of H12, a multiple of 1/k after k probes.
    const point: [number, number] = [-1.2, 1];
    const { exact, estimates } = compareDiagonal('rosenbrock', point, 16, 3);
    const { fxy } = finiteDifferenceHessian(FUNCTIONS.rosenbrock.value, ...point);
    assert.equal(estimates.length, 16);
    estimates.forEach(([e1, e2], i) => {
      const k = i + 1;
      const off1 = e1 - exact[0];
      const off2 = e2 - exact[1];
      assert.ok(Math.abs(off1 - off2) <= 1e-3, `probe ${k}: ${off1} vs ${off2}`);
      const multiple = (off1 / fxy) * k;
      assert.ok(Math.abs(multiple - Math.round(multiple)) < 1e-3, `probe ${k}: ${multiple}`);
      assert.ok(Math.abs(Math.round(multiple)) <= k, `probe ${k}: ${multiple}`);
    });
  });

  it('runs every racer, leaks no tensors, and repeats itself for a seed', () => {
    const settings = { ...defaultRaceSettings('quadratic'), steps: 30, probes: 2, seed: 4 };
    const before = tf.memory().numTensors;
    const a = runRace(settings);
    const b = runRace(settings);
    assert.equal(tf.memory().numTensors, before);
    assert.deepEqual(a, b);
    for (const r of RACERS) {
      const t = a.trajectories[r];
      assert.equal(t.points.length, 31, r);
      assert.equal(t.diverged, false, r);
      // Every racer gets downhill on the quadratic at these rates.
      assert.ok(t.losses.at(-1)! < t.losses[0]!, `${r}: ${t.losses[0]} -> ${t.losses.at(-1)}`);
    }
  });

  it('stops drawing a racer that diverges, and the others go on', () => {
    const settings = defaultRaceSettings('rosenbrock');
    settings.steps = 20;
    settings.learningRates.sgd = 0.1;
    const { trajectories } = runRace(settings);
    assert.equal(trajectories.sgd.diverged, true);
    assert.ok(trajectories.sgd.points.length < 21);
    assert.ok(trajectories.sgd.points.flat().every(Number.isFinite));
    assert.equal(trajectories.adam.points.length, 21);
  });

  it('names a bad setting in one line and builds nothing', () => {
    const settings = { ...defaultRaceSettings('beale'), hessianPower: 1.5 };
    assert.deepEqual(checkRaceSettings(settings), [
      'the Hessian power must be in (0, 1], got 1.5.',
    ]);
    const before = tf.memory().numTensors;
    assert.throws(() => new Race(settings), {
      name: 'RangeError',
      message: 'the Hessian power must be in (0, 1], got 1.5.',
    });
    assert.equal(tf.memory().numTensors, before);
    assert.throws(() => runRace({ ...settings, hessianPower: 1, fn: 'sphere' as never }), {
      message: /Unknown test function 'sphere'/,
    });
  });
});
