/**
 * The fused first-order updates of src/native/first-order-update.ts (installed by
 * enableNativeKernels) against TF.js's and AdamW's tensor ops: tf.train.adam (bias
 * corrections over several steps, other betas and epsilon), tf.train.momentum (plain and
 * Nesterov) and AdamW (with and without weight decay) give the same weights and state bit for
 * bit, including a step where some variables have no gradient and a restore through
 * getWeights / setWeights; slot names and configs are unchanged; no tensors leak; the
 * updates are removed by disableNativeKernels() and by fusedOptimizerUpdate: false.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { AdamW } from '../../src/index.js';
import { onBackend } from '../helpers.js';
import { disableNativeKernels, enableNativeKernels } from '../../src/native/index.js';
import { onnxRuntimeUnavailableReason } from '../../src/native/onnx-runtime.js';
import { fusedAdamWUpdateFor } from '../../src/optimizers/fused-first-order.js';

const unavailable = onnxRuntimeUnavailableReason();

const SHAPES = [[3, 3, 2, 4], [7, 5], [5], [2, 3, 4]];

/** Deterministic values in [-1, 1) (a small LCG), so both runs see identical inputs. */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

const ORIGINAL_ADAM = tf.AdamOptimizer.prototype.applyGradients;
const ORIGINAL_MOMENTUM = tf.MomentumOptimizer.prototype.applyGradients;

function setFused(fused: boolean): void {
  if (fused) enableNativeKernels({ threads: 1 });
  else disableNativeKernels();
  assert.equal(tf.AdamOptimizer.prototype.applyGradients !== ORIGINAL_ADAM, fused);
  assert.equal(tf.MomentumOptimizer.prototype.applyGradients !== ORIGINAL_MOMENTUM, fused);
  assert.equal(fusedAdamWUpdateFor('cpu') != null, fused);
}

/** Numbers the variables' names, so that a failed run's leftovers do not clash. */
let runs = 0;

interface Trajectory {
  weights: Float32Array[];
  names: string[];
  state: Float32Array[];
}

/**
 * Six steps of applyGradients with made-up gradients (step 3 updates only the first two
 * variables; step 4 passes a NamedTensorMap); with `restoreAfter` the optimizer is saved
 * after that many steps and a fresh one built by `make` continues from its weights.
 */
async function run(
  make: () => tf.Optimizer,
  fused: boolean,
  restoreAfter?: number,
): Promise<Trajectory> {
  setFused(fused);
  runs++;
  const vars = SHAPES.map((shape, i) =>
    tf.tidy(() =>
      tf.variable(
        tf.tensor(values(tf.util.sizeFromShape(shape), 10 + i), shape),
        true,
        `run${runs}_w${i}`,
      ),
    ),
  );
  let optimizer = make();
  let tensorsAfterFirst = 0;
  for (let step = 1; step <= 6; step++) {
    const used = step === 3 ? vars.slice(0, 2) : vars;
    const grads = used.map((v, i) => ({
      name: v.name,
      tensor: tf.tidy(() => tf.mul(tf.tensor(values(v.size, 100 * step + 7 * i), v.shape), 2)),
    }));
    if (step === 4) {
      optimizer.applyGradients(Object.fromEntries(grads.map((g) => [g.name, g.tensor])));
    } else {
      optimizer.applyGradients(grads);
    }
    tf.dispose(grads.map((g) => g.tensor));
    // The first step (and the first after a restore) creates the state.
    if (step === 1 || step === restoreAfter! + 1) tensorsAfterFirst = tf.memory().numTensors;
    else {
      assert.equal(tf.memory().numTensors, tensorsAfterFirst, `tensors after step ${step}`);
    }
    if (step === restoreAfter) {
      const saved = await optimizer.getWeights();
      const copies = saved.map((s) => ({ name: s.name, tensor: tf.clone(s.tensor) }));
      optimizer.dispose();
      optimizer = make();
      await optimizer.setWeights(copies);
      tf.dispose(copies.map((c) => c.tensor));
    }
  }
  const state = await optimizer.getWeights();
  const result = {
    weights: vars.map((v) => v.dataSync().slice() as Float32Array),
    names: state.map((s) => s.name.replace(/^run\d+_/, '')),
    state: state.map((s) => Float32Array.from(s.tensor.dataSync())),
  };
  tf.dispose(state.map((s) => s.tensor));
  optimizer.dispose();
  tf.dispose(vars);
  disableNativeKernels();
  return result;
}

async function assertSameTrajectory(make: () => tf.Optimizer, restoreAfter?: number) {
  const ops = await run(make, false, restoreAfter);
  const fused = await run(make, true, restoreAfter);
  assert.deepEqual(fused.names, ops.names);
  fused.weights.forEach((w, i) => assert.deepEqual(w, ops.weights[i], `weights of w${i}`));
  fused.state.forEach((s, i) => assert.deepEqual(s, ops.state[i], `state ${ops.names[i]}`));
  // The weights moved (the comparison is not of two untouched copies).
  assert.notDeepEqual(ops.weights[0], values(ops.weights[0]!.length, 10));
}

const OPTIMIZERS: [string, () => tf.Optimizer][] = [
  ['tf.train.adam', () => tf.train.adam(0.01)],
  ['tf.train.adam, other betas and epsilon', () => tf.train.adam(0.3, 0.5, 0.7, 1e-3)],
  ['tf.train.momentum', () => tf.train.momentum(0.05, 0.9)],
  ['tf.train.momentum, Nesterov', () => tf.train.momentum(0.05, 0.8, true)],
  ['AdamW', () => new AdamW({ learningRate: 0.01 })],
  ['AdamW without decay', () => new AdamW({ learningRate: 0.2, weightDecay: 0, beta2: 0.9 })],
];

describe('fused first-order updates on cpu', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));
  after(() => disableNativeKernels());

  for (const [name, make] of OPTIMIZERS) {
    it(`${name}: the ops' weights and state, bit for bit`, async () => {
      await assertSameTrajectory(make);
    });
    it(`${name}: the same after a getWeights / setWeights restore`, async () => {
      await assertSameTrajectory(make, 2);
    });
  }

  it('leaves configs alone and is off with fusedOptimizerUpdate: false', () => {
    enableNativeKernels({ threads: 1, fusedOptimizerUpdate: false });
    assert.equal(tf.AdamOptimizer.prototype.applyGradients, ORIGINAL_ADAM);
    assert.equal(fusedAdamWUpdateFor('cpu'), undefined);
    setFused(true);
    assert.deepEqual(tf.train.adam(0.01).getConfig(), {
      learningRate: 0.01,
      beta1: 0.9,
      beta2: 0.999,
      epsilon: 1e-7,
    });
    setFused(false);
  });
});
