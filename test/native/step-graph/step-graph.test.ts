/**
 * Step graphs (src/native/step-graph): a replayed step gives the op-by-op loss, gradients and
 * Hutchinson diagonal to float32 rounding (char transformer and MLP, several steps with new
 * batches), recompiles for a new shape, refuses steps it cannot compile (a constant that
 * changes, a kernel without a translation) and stays op by op for them, leaks no tensors, and
 * AdaHessian trained through it reaches the op-by-op weights.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  adahessian,
  buildCharTransformer,
  buildMlp,
  softmaxCrossEntropy,
} from '../../../src/index.js';
import { drawProbes, hutchinsonDiagonal } from '../../../src/optimizers/hutchinson.js';
import { RademacherGenerator } from '../../../src/optimizers/rademacher.js';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import { CompiledSteps } from '../../../src/native/step-graph/hutchinson-step.js';
import { createStepGraphProvider } from '../../../src/native/step-graph/enable.js';
import { installStepGraphProvider } from '../../../src/native/step-graph/hook.js';
import { onBackend } from '../../helpers.js';
import { assertClose } from './helpers.js';
import { disableNativeKernels, enableNativeKernels } from '../../../src/native/index.js';
import {
  disableStepGraphs,
  enableStepGraphs,
  stepGraphsStatus,
} from '../../../src/native/step-graph/enable.js';

const unavailable = onnxRuntimeUnavailableReason();
if (unavailable !== '') console.log(`# step-graph test skipped: ${unavailable}`);

const VOCAB = 11;
const CONTEXT = 8;

function transformer() {
  const model = buildCharTransformer({
    vocabSize: VOCAB,
    contextLength: CONTEXT,
    dModel: 16,
    ffDim: 32,
    seed: 3,
  });
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const batchAt = (step: number, batch = 4) => {
    const ids = tf.randomUniform([batch, CONTEXT], 0, VOCAB, 'int32', 100 + step);
    const y = tf.tidy(() =>
      tf.oneHot(tf.randomUniform([batch, CONTEXT], 0, VOCAB, 'int32', 200 + step), VOCAB),
    );
    return { tensors: [ids, y], f: () => softmaxCrossEntropy(y, model.apply(ids) as tf.Tensor) };
  };
  return { model, vars, batchAt };
}

function mlp() {
  const model = buildMlp({ seed: 4, inputShape: [12], hidden: 10, classes: 5 });
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const batchAt = (step: number, batch = 6) => {
    const x = tf.randomNormal([batch, 12], 0, 1, 'float32', 300 + step);
    const y = tf.tidy(() => tf.oneHot(tf.randomUniform([batch], 0, 5, 'int32', 400 + step), 5));
    return { tensors: [x, y], f: () => softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) };
  };
  return { model, vars, batchAt };
}

/** Runs `steps` Hutchinson steps through `compiled` and op by op, comparing each. */
function compareSteps(
  setup: ReturnType<typeof transformer>,
  compiled: CompiledSteps,
  steps: number,
  batchFor: (step: number) => number,
): boolean[] {
  const generator = new RademacherGenerator(9);
  const replayed: boolean[] = [];
  for (let s = 0; s < steps; s++) {
    const { tensors, f } = setup.batchAt(s, batchFor(s));
    const probes = drawProbes(generator, setup.vars, 1);
    const got = compiled.hutchinsonStep(f, probes);
    const want = hutchinsonDiagonal(f, setup.vars, { probes, checkFinite: false });
    replayed.push(got.replayed);
    assertClose([got.loss], [want.loss], 1e-5, `step ${s} loss`);
    assertClose(got.grads, want.grads, 1e-4, `step ${s} gradients`);
    assertClose(got.diagonal, want.diagonal, 1e-4, `step ${s} diagonal`);
    tf.dispose([
      got.loss,
      ...got.grads,
      ...got.diagonal,
      want.loss,
      ...want.grads,
      ...want.diagonal,
    ]);
    tf.dispose([...probes.flat(), ...tensors]);
  }
  return replayed;
}

describe('step graphs (cpu)', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));

  it('replays the transformer step: loss, gradients and diagonal as op by op, new batches each step', () => {
    const setup = transformer();
    const compiled = new CompiledSteps(setup.vars);
    const before = tf.memory().numTensors;
    const replayed = compareSteps(setup, compiled, 5, () => 4);
    // Two captures, then the graph.
    assert.deepEqual(
      replayed,
      [false, false, true, true, true],
      compiled.hutchinson.status.lastReason,
    );
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    assert.equal(compiled.hutchinson.status.compiled, 1);
    compiled.dispose();
    setup.model.dispose();
  });

  it('replays an MLP step and recompiles for a new batch size', () => {
    const setup = mlp() as unknown as ReturnType<typeof transformer>;
    const compiled = new CompiledSteps(setup.vars);
    const replayed = compareSteps(setup, compiled, 7, (s) => (s < 3 ? 6 : 9));
    assert.deepEqual(
      replayed,
      [false, false, true, false, false, true, true],
      compiled.hutchinson.status.lastReason,
    );
    assert.equal(compiled.hutchinson.status.compiled, 2);
    // Back to the first shape: its graph is still there.
    assert.deepEqual(
      compareSteps(setup, compiled, 1, () => 6),
      [true],
    );
    compiled.dispose();
    setup.model.dispose();
  });

  it('refuses a step whose constants differ between steps, and stays op by op', () => {
    const setup = mlp() as unknown as ReturnType<typeof transformer>;
    const compiled = new CompiledSteps(setup.vars);
    const generator = new RademacherGenerator(1);
    let calls = 0;
    for (let s = 0; s < 4; s++) {
      const { tensors, f } = setup.batchAt(s);
      // A mask made in JS with other values each step (dropout-like): never a constant.
      const noisy = () => {
        calls++;
        const mask = tf.tensor1d([1, calls % 2, 1, 1, 0.5]);
        return tf.mean(tf.mul(f(), tf.sum(mask))) as tf.Scalar;
      };
      const probes = drawProbes(generator, setup.vars, 1);
      const got = compiled.hutchinsonStep(noisy, probes);
      assert.equal(got.replayed, false);
      tf.dispose([got.loss, ...got.grads, ...got.diagonal, ...probes.flat(), ...tensors]);
    }
    // The first step's provisional graph is dropped when the second step's mask differs.
    assert.equal(compiled.hutchinson.status.replays, 0);
    assert.match(compiled.hutchinson.status.lastReason, /changed between steps/);
    compiled.dispose();
    setup.model.dispose();
  });

  it('gives a step the same values, bit for bit, whether its graph was built now or earlier (resuming)', () => {
    const setup = transformer();
    const run = (from: number) => {
      const compiled = new CompiledSteps(setup.vars);
      const generator = new RademacherGenerator(4);
      const values: Float32Array[][] = [];
      for (let s = 0; s < 5; s++) {
        const probes = drawProbes(generator, setup.vars, 1);
        if (s >= from) {
          const { tensors, f } = setup.batchAt(s);
          const got = compiled.hutchinsonStep(f, probes);
          const outs = [got.loss, ...got.grads, ...got.diagonal];
          values.push(outs.map((t) => t.dataSync().slice() as Float32Array));
          tf.dispose([...outs, ...tensors]);
        }
        tf.dispose(probes.flat());
      }
      compiled.dispose();
      return values;
    };
    const uninterrupted = run(0).slice(2);
    const resumed = run(2); // a fresh process at step 2: captures steps 2 and 3, replays 4
    assert.deepEqual(resumed, uninterrupted);
    setup.model.dispose();
  });

  it('bakes in a small tensor made before the step, and does not replay when its value changes', () => {
    const setup = mlp() as unknown as ReturnType<typeof transformer>;
    const compiled = new CompiledSteps(setup.vars);
    const generator = new RademacherGenerator(2);
    // tf.layers caches scalars like this one; a user's could change between steps.
    const scales = [1, 1, 1, 1, 2, 2];
    const replayed = scales.map((value, s) => {
      const scale = tf.scalar(value);
      const { tensors, f } = setup.batchAt(s);
      const scaled = () => tf.mul(f(), scale) as tf.Scalar;
      const probes = drawProbes(generator, setup.vars, 1);
      const got = compiled.hutchinsonStep(scaled, probes);
      const want = hutchinsonDiagonal(scaled, setup.vars, { probes, checkFinite: false });
      assertClose([got.loss], [want.loss], 1e-5, `step ${s} loss`);
      assertClose(got.diagonal, want.diagonal, 1e-4, `step ${s} diagonal`);
      tf.dispose([
        got.loss,
        ...got.grads,
        ...got.diagonal,
        want.loss,
        ...want.grads,
        ...want.diagonal,
      ]);
      tf.dispose([...probes.flat(), ...tensors, scale]);
      return got.replayed;
    });
    assert.deepEqual(replayed, [false, false, true, true, false, false]);
    compiled.dispose();
    setup.model.dispose();
  });

  it('refuses a kernel without a translation, naming it, and stops trying', () => {
    const setup = mlp() as unknown as ReturnType<typeof transformer>;
    const reasons: string[] = [];
    const compiled = new CompiledSteps(setup.vars, { debug: (r) => reasons.push(r) });
    const generator = new RademacherGenerator(1);
    for (let s = 0; s < 5; s++) {
      const { tensors, f } = setup.batchAt(s);
      // Sin is second-order verified but has no translation: a stand-in for any such kernel.
      const withSin = () => tf.add(f(), tf.sum(tf.sin(setup.vars[0]!))) as tf.Scalar;
      const probes = drawProbes(generator, setup.vars, 1);
      const got = compiled.hutchinsonStep(withSin, probes);
      assert.equal(got.replayed, false);
      tf.dispose([got.loss, ...got.grads, ...got.diagonal, ...probes.flat(), ...tensors]);
    }
    assert.ok(
      reasons.some((r) => r.includes('kernel Sin')),
      reasons.join('\n'),
    );
    // Three fruitless captures, then plain op by op without recording.
    assert.equal(compiled.hutchinson.status.captures, 3);
    assert.equal(compiled.hutchinson.status.opByOp, 5);
    compiled.dispose();
    setup.model.dispose();
  });

  it("runs a step op by op when its capture fails, and lets the loss function's own errors through", () => {
    const setup = mlp() as unknown as ReturnType<typeof transformer>;
    const reasons: string[] = [];
    const compiled = new CompiledSteps(setup.vars, { debug: (r) => reasons.push(r) });
    const generator = new RademacherGenerator(1);
    const { tensors, f } = setup.batchAt(0);
    // Throws on its first call only (inside the capture), as a capture's own failure would.
    let calls = 0;
    const flaky = () => {
      if (calls++ === 0) throw new TypeError('a failure inside the capture');
      return f();
    };
    const probes = drawProbes(generator, setup.vars, 1);
    const before = tf.memory().numTensors;
    const got = compiled.hutchinsonStep(flaky, probes);
    assert.equal(got.replayed, false);
    assert.ok(Number.isFinite(got.loss.dataSync()[0]!));
    assert.ok(
      reasons.some((r) => r.includes('capture failed: TypeError')),
      reasons.join('\n'),
    );
    tf.dispose([got.loss, ...got.grads, ...got.diagonal]);
    // A loss function that always fails: its error reaches the caller, nothing is left over.
    const broken = () => {
      throw new RangeError("the user's own error");
    };
    assert.throws(() => compiled.hutchinsonStep(broken, probes), /the user's own error/);
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([...probes.flat(), ...tensors]);
    compiled.dispose();
    setup.model.dispose();
  });

  it('trains AdaHessian to the op-by-op weights through minimize', () => {
    const a = transformer();
    const b = transformer();
    const optA = adahessian({ seed: 5, learningRate: 0.01 });
    const optB = adahessian({ seed: 5, learningRate: 0.01 });
    const graphs = createStepGraphProvider();
    const initial = a.vars.map((v) => v.dataSync().slice());
    for (let s = 0; s < 5; s++) {
      const batchA = a.batchAt(s);
      const batchB = b.batchAt(s);
      optA.minimize(batchA.f, false, a.vars);
      const uninstall = installStepGraphProvider(graphs.provider);
      try {
        optB.minimize(batchB.f, false, b.vars);
      } finally {
        uninstall();
      }
      tf.dispose([...batchA.tensors, ...batchB.tensors]);
    }
    assert.equal(graphs.status().replays, 3, graphs.status().lastReason);
    // AdaHessian divides by |diagonal| entries near zero, which magnifies float32 rounding:
    // the stock path against native matmuls alone differs by up to 7e-4 after these 5 steps
    // (the weights moved by up to 1.3); a wrong translation differs by the step's size. The
    // key biases have no gradient (softmax ignores a shift): they move by rounding alone. With
    // the compact layer norms (tenth session) a query kernel that moved 0.08 differed by 4.5e-4
    // (5.4e-3 of its movement; the graph agreed with op by op at capture to 1.5e-4 of the check's
    // tolerance), hence 1e-2.
    a.vars.forEach((v, i) => {
      const x = v.dataSync();
      const y = b.vars[i]!.dataSync();
      let err = 0;
      let moved = 0;
      for (let k = 0; k < x.length; k++) {
        err = Math.max(err, Math.abs(x[k]! - y[k]!));
        moved = Math.max(moved, Math.abs(x[k]! - initial[i]![k]!));
      }
      assert.ok(
        err < 1e-3 && (err < 1e-2 * moved || err < 1e-5),
        `${v.name}: weights differ by ${err}, moved ${moved}`,
      );
    });
    for (const s of graphs.all) s.dispose();
    optA.dispose();
    optB.dispose();
    a.model.dispose();
    b.model.dispose();
  });

  it('is on by default with the native kernels (AdaHessian minimize replays), off with stepGraphs: false', () => {
    const run = (options: { stepGraphs?: 'adahessian' | boolean }) => {
      const status = enableNativeKernels({ threads: 1, ...options });
      const setup = transformer();
      const optimizer = adahessian({ seed: 5, learningRate: 0.01 });
      for (let s = 0; s < 4; s++) {
        const batch = setup.batchAt(s);
        optimizer.minimize(batch.f, false, setup.vars);
        tf.dispose(batch.tensors);
      }
      const graphs = stepGraphsStatus();
      optimizer.dispose();
      setup.model.dispose();
      disableNativeKernels();
      return { enabled: status.stepGraphs, replays: graphs.replays };
    };
    assert.deepEqual(run({}), { enabled: 'all', replays: 2 });
    assert.deepEqual(run({ stepGraphs: 'adahessian' }), { enabled: 'adahessian', replays: 2 });
    assert.deepEqual(run({ stepGraphs: false }), { enabled: false, replays: 0 });
    assert.equal(stepGraphsStatus().enabled, false, 'disableNativeKernels() turns them off');
  });

  it("replays TF.js's own optimizers' gradients with firstOrder: true", () => {
    const train = (firstOrder: boolean) => {
      if (firstOrder) enableStepGraphs({ firstOrder: true });
      const setup = transformer();
      const optimizer = tf.train.sgd(0.1);
      for (let s = 0; s < 5; s++) {
        const batch = setup.batchAt(s);
        optimizer.minimize(batch.f, false, setup.vars);
        tf.dispose(batch.tensors);
      }
      const replays = stepGraphsStatus().replays;
      disableStepGraphs();
      const weights = setup.vars.map((v) => v.dataSync().slice());
      optimizer.dispose();
      setup.model.dispose();
      return { weights, replays };
    };
    const plain = train(false);
    const replayed = train(true);
    assert.equal(replayed.replays, 3);
    const got = replayed.weights.map((w) => tf.tensor(w));
    const want = plain.weights.map((w) => tf.tensor(w));
    assertClose(got, want, 1e-5, 'weights after 5 sgd steps');
    tf.dispose([...got, ...want]);
  });
});
