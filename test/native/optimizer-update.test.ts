/**
 * AdaHessian's fused cpu update (installed by enableNativeKernels) against its tensor-op
 * update: the same gradients and Hessian diagonals give the same weights and state to float32
 * rounding, for every averaging mode, Hessian power, weight decay and delayed-Hessian step;
 * non-finite input is refused with the same error and nothing changes; the update is removed
 * again by disableNativeKernels() and can be turned off.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { AdaHessian, NonFiniteError, type AdaHessianConfig } from '../../src/index.js';
import { onBackend } from '../helpers.js';
import { disableNativeKernels, enableNativeKernels } from '../../src/native/index.js';
import { onnxRuntimeUnavailableReason } from '../../src/native/onnx-runtime.js';
import { fusedAdaHessianUpdateFor } from '../../src/optimizers/fused-update.js';

const unavailable = onnxRuntimeUnavailableReason();

// A conv kernel, a dense kernel, a bias and a rank-3 kernel: every default averaging mode.
const SHAPES = [[3, 3, 2, 4], [7, 5], [5], [2, 3, 4]];

/** Deterministic values in [-1, 1) (a small LCG), so both runs see identical inputs. */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

interface Trajectory {
  weights: Float32Array[];
  state: Float32Array[];
}

/**
 * Four steps of applyGradientsWithHessian (a diagonal on steps 1, 2 and 4, none on step 3),
 * with the fused update on or off; returns the final weights and optimizer state.
 */
async function run(config: AdaHessianConfig, fused: boolean): Promise<Trajectory> {
  if (fused) enableNativeKernels({ threads: 1 });
  else disableNativeKernels();
  assert.equal(fusedAdaHessianUpdateFor('cpu') != null, fused);
  const vars = SHAPES.map((shape, i) =>
    tf.tidy(() =>
      tf.variable(tf.tensor(values(tf.util.sizeFromShape(shape), 10 + i), shape), true, `w${i}`),
    ),
  );
  const optimizer = new AdaHessian(config);
  for (let step = 1; step <= 4; step++) {
    const named = (seed: number, scale: number) =>
      vars.map((v, i) => ({
        name: v.name,
        tensor: tf.tidy(() => tf.mul(tf.tensor(values(v.size, seed + 7 * i), v.shape), scale)),
      }));
    const grads = named(100 * step, 1);
    const diagonal = step === 3 ? null : named(1000 * step, 3);
    optimizer.applyGradientsWithHessian(grads, diagonal);
    tf.dispose([...grads, ...(diagonal ?? [])].map((x) => x.tensor));
  }
  const state = await optimizer.getWeights();
  const result = {
    weights: vars.map((v) => v.dataSync().slice() as Float32Array),
    // iter, hessianUpdates, then every m and v (the probe generator is seeded at random).
    state: state
      .filter((s) => s.name !== 'probeGenerator')
      .map((s) => Float32Array.from(s.tensor.dataSync())),
  };
  tf.dispose(state.map((s) => s.tensor));
  optimizer.dispose();
  tf.dispose(vars);
  disableNativeKernels();
  return result;
}

function assertClose(actual: Float32Array[], expected: Float32Array[], what: string): void {
  assert.equal(actual.length, expected.length);
  expected.forEach((e, k) => {
    let worst = 0;
    e.forEach((x, i) => {
      worst = Math.max(worst, Math.abs(actual[k]![i]! - x) / (1 + Math.abs(x)));
    });
    assert.ok(worst < 2e-6, `${what} ${k}: worst relative difference ${worst}`);
  });
}

describe('fused AdaHessian update on cpu', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));
  after(() => disableNativeKernels());

  const configs: [string, AdaHessianConfig][] = [
    ['defaults', {}],
    ['k = 0.5, weight decay', { hessianPower: 0.5, weightDecay: 0.01 }],
    [
      'blocks on dense and bias, none on conv',
      { spatialAveraging: { 1: { blockSize: 2 }, 2: { blockSize: 3 }, 4: 'none' } },
    ],
    ['k = 0.7, betas, epsilon', { hessianPower: 0.7, beta1: 0.8, beta2: 0.95, epsilon: 1e-3 }],
  ];
  for (const [label, config] of configs) {
    it(`agrees with the tensor-op update: ${label}`, async () => {
      const before = tf.memory().numTensors;
      const ops = await run({ learningRate: 0.1, ...config }, false);
      const fused = await run({ learningRate: 0.1, ...config }, true);
      assertClose(fused.weights, ops.weights, 'weight');
      assertClose(fused.state, ops.state, 'state');
      assert.equal(tf.memory().numTensors, before);
    });
  }

  it('refuses non-finite input with the same error, changing nothing', () => {
    const attempt = (fused: boolean) => {
      if (fused) enableNativeKernels({ threads: 1 });
      else disableNativeKernels();
      const w = tf.tidy(() => tf.variable(tf.tensor([1, 2, 3]), true, 'nanTarget'));
      const optimizer = new AdaHessian({ learningRate: 0.1 });
      const ok = [{ name: w.name, tensor: tf.tensor([0.1, 0.2, 0.3]) }];
      optimizer.applyGradientsWithHessian(ok, ok);
      const weightsBefore = w.dataSync().slice();
      const bad = [{ name: w.name, tensor: tf.tensor([0.1, NaN, Infinity]) }];
      let message = '';
      assert.throws(
        () => optimizer.applyGradientsWithHessian(ok, bad),
        (e: Error) => {
          message = e.message;
          return e instanceof NonFiniteError;
        },
      );
      assert.deepEqual(w.dataSync(), weightsBefore);
      assert.equal(optimizer.iterations, 1);
      tf.dispose([w, ...ok.map((x) => x.tensor), ...bad.map((x) => x.tensor)]);
      optimizer.dispose();
      disableNativeKernels();
      return message;
    };
    const expected = attempt(false);
    assert.match(expected, /Hessian diagonal estimate of 'nanTarget' has 2 non-finite entries/);
    assert.equal(attempt(true), expected);
  });

  it('minimize() with native kernels and the fused update tracks the stock run', () => {
    const trainOnce = (native: boolean) => {
      if (native) enableNativeKernels({ threads: 1 });
      else disableNativeKernels();
      const w = tf.tidy(() => tf.variable(tf.tensor(values(3 * 3 * 2 * 4, 5), [3, 3, 2, 4])));
      const x = tf.tensor(values(2 * 6 * 6 * 2, 6), [2, 6, 6, 2]) as tf.Tensor4D;
      const optimizer = new AdaHessian({ learningRate: 0.05, seed: 3 });
      for (let i = 0; i < 3; i++) {
        optimizer.minimize(() =>
          tf.mean(tf.square(tf.relu(tf.conv2d(x, w as unknown as tf.Tensor4D, 1, 'same')))),
        );
      }
      const result = w.dataSync().slice() as Float32Array;
      tf.dispose([w, x]);
      optimizer.dispose();
      disableNativeKernels();
      return result;
    };
    assertClose([trainOnce(true)], [trainOnce(false)], 'weights after 3 steps');
  });

  it('is removed by disableNativeKernels() and can be turned off', () => {
    enableNativeKernels();
    assert.ok(fusedAdaHessianUpdateFor('cpu'));
    disableNativeKernels();
    assert.equal(fusedAdaHessianUpdateFor('cpu'), undefined);
    enableNativeKernels({ fusedOptimizerUpdate: false });
    assert.equal(fusedAdaHessianUpdateFor('cpu'), undefined);
    disableNativeKernels();
  });
});
