/**
 * Step graphs of loss functions that assign variables (src/native/step-graph/assign.ts): batch
 * norm's moving mean and variance in training mode. A replayed step gives op by op's loss,
 * gradients, Hutchinson diagonal and moving statistics to float32 rounding, step after step;
 * AdaHessian trained through minimize reaches op by op's weights and statistics; assignments
 * that differ from the captured ones (by a flag outside the loss function, by a tensor's
 * value) run op by op, and an assignment outside the loss function refuses; no tensor leaks.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { adahessian, softmaxCrossEntropy } from '../../../src/index.js';
import { drawProbes, hutchinsonDiagonal } from '../../../src/optimizers/hutchinson.js';
import { RademacherGenerator } from '../../../src/optimizers/rademacher.js';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import { CompiledSteps } from '../../../src/native/step-graph/hutchinson-step.js';
import { createStepGraphProvider } from '../../../src/native/step-graph/enable.js';
import { installStepGraphProvider } from '../../../src/native/step-graph/hook.js';
import { StepGraphCompiler } from '../../../src/native/step-graph/step-graph.js';
import { ResNetBatchNormalization } from '../../../src/models/resnet-batch-norm.js';
import { onBackend } from '../../helpers.js';
import { assertClose } from './helpers.js';

const unavailable = onnxRuntimeUnavailableReason();
if (unavailable !== '') console.log(`# step-graph assign test skipped: ${unavailable}`);

const BN = { axis: -1, momentum: 0.9, epsilon: 1e-3 } as const;

/**
 * Dense, batch norm (20 channels: moving statistics are larger than the 16 elements up to
 * which tensors from before a step are baked in), relu, dense, batch norm (10: smaller), relu,
 * dense. `stock`: tf.layers' own batch norm (FusedBatchNorm) instead of ResNet-20's.
 */
function bnModel(stock = false) {
  const norm = () =>
    stock ? tf.layers.batchNormalization(BN) : new ResNetBatchNormalization({ ...BN });
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [12], units: 20 }),
      norm(),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.dense({ units: 10 }),
      norm(),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.dense({ units: 5 }),
    ],
  });
  // Seeded weights; gammas near 1, moving variances positive.
  const weights = model.weights.map((w, i) =>
    tf.tidy(() => {
      const r = tf.randomNormal(w.shape as number[], 0, 0.5, 'float32', 40 + i);
      return /gamma|moving_variance/.test(w.name) ? tf.add(tf.abs(r), 0.5) : r;
    }),
  );
  model.setWeights(weights);
  tf.dispose(weights);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const moving = model.weights.filter((w) => !w.trainable).map((w) => w.read() as tf.Variable);
  assert.equal(moving.length, 4);
  const batchAt = (step: number, batch = 8) => {
    const x = tf.randomNormal([batch, 12], 0, 1, 'float32', 300 + step);
    const y = tf.tidy(() => tf.oneHot(tf.randomUniform([batch], 0, 5, 'int32', 400 + step), 5));
    const f = () => softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor);
    return { tensors: [x, y], f };
  };
  return { model, vars, moving, batchAt };
}

describe('step graphs that assign variables (cpu)', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));

  for (const stock of [false, true]) {
    it(`replays a ${stock ? 'stock tf.layers' : "ResNet-20's"} batch-norm step: loss, gradients, diagonal and moving statistics as op by op`, () => {
      // Two identical models: one through the step graphs, one op by op.
      const a = bnModel(stock);
      const b = bnModel(stock);
      const compiled = new CompiledSteps(a.vars);
      const generator = new RademacherGenerator(9);
      const start = tf.memory().numTensors;
      const replayed: boolean[] = [];
      for (let s = 0; s < 6; s++) {
        const batchA = a.batchAt(s);
        const batchB = b.batchAt(s);
        const probesA = drawProbes(generator, a.vars, 1);
        const probesB = probesA.map((list) => list.map((p) => p.clone()));
        const got = compiled.hutchinsonStep(batchA.f, probesA);
        const want = hutchinsonDiagonal(batchB.f, b.vars, { probes: probesB, checkFinite: false });
        replayed.push(got.replayed);
        assertClose([got.loss], [want.loss], 1e-5, `step ${s} loss`);
        assertClose(got.grads, want.grads, 1e-4, `step ${s} gradients`);
        assertClose(got.diagonal, want.diagonal, 1e-4, `step ${s} diagonal`);
        // Each step moves the statistics by a tenth of the batch's: compare that move.
        assertClose(a.moving, b.moving, 1e-5, `step ${s} moving statistics`);
        tf.dispose([got.loss, ...got.grads, ...got.diagonal]);
        tf.dispose([want.loss, ...want.grads, ...want.diagonal]);
        tf.dispose([...probesA.flat(), ...probesB.flat(), ...batchA.tensors, ...batchB.tensors]);
      }
      assert.deepEqual(
        replayed,
        [false, false, true, true, true, true],
        compiled.hutchinson.status.lastReason,
      );
      // The statistics moved (six updates), so the comparison above could fail.
      const initial = bnModel(stock);
      tf.tidy(() => {
        const moved = tf.max(tf.abs(tf.sub(a.moving[0]!, initial.moving[0]!))).dataSync()[0]!;
        assert.ok(moved > 0.05, `moving mean moved by ${moved}`);
      });
      initial.model.dispose();
      assert.equal(tf.memory().numTensors, start, 'tensors leaked');
      compiled.dispose();
      a.model.dispose();
      b.model.dispose();
    });
  }

  it('trains AdaHessian through minimize to the op-by-op weights and moving statistics', () => {
    const a = bnModel();
    const b = bnModel();
    const optA = adahessian({ seed: 5, learningRate: 0.01 });
    const optB = adahessian({ seed: 5, learningRate: 0.01 });
    const graphs = createStepGraphProvider();
    const initial = b.model.weights.map((w) => w.read().dataSync().slice());
    for (let s = 0; s < 6; s++) {
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
    assert.equal(graphs.status().replays, 4, graphs.status().lastReason);
    // AdaHessian divides by diagonal entries near zero, which magnifies float32 rounding (see
    // step-graph.test.ts); a skipped or doubled statistics update differs by ~10 % of them.
    a.model.weights.forEach((w, i) => {
      const x = w.read().dataSync();
      const y = b.model.weights[i]!.read().dataSync();
      let err = 0;
      let moved = 0;
      for (let k = 0; k < x.length; k++) {
        err = Math.max(err, Math.abs(x[k]! - y[k]!));
        moved = Math.max(moved, Math.abs(y[k]! - initial[i]![k]!));
      }
      assert.ok(moved > 0, `${w.name} did not move`);
      // The first dense layer's bias feeds batch norm, which removes any shift: its gradient
      // is rounding noise, and it moves by rounding alone.
      assert.ok(
        err < 1e-3 && (err < 5e-3 * moved || err < 5e-5),
        `${w.name}: differs by ${err}, moved ${moved}`,
      );
    });
    for (const s of graphs.all) s.dispose();
    optA.dispose();
    optB.dispose();
    a.model.dispose();
    b.model.dispose();
  });

  it('runs op by op when a step assigns other variables than the compiled one, by a flag or by a value', () => {
    const a = bnModel();
    const b = bnModel();
    const extraA = tf.variable(tf.scalar(0), false);
    const extraB = tf.variable(tf.scalar(0), false);
    const reasons: string[] = [];
    const compiled = new CompiledSteps(a.vars, { debug: (r) => reasons.push(r) });
    const generator = new RademacherGenerator(3);
    // Assigns `extra` the loss (no kernel call: the same forward pass) on steps 2 and 5 only
    // (a flag set outside the loss function), and from step 6 on only where the loss exceeds
    // a value (read inside the loss function).
    const withExtra = (f: () => tf.Scalar, extra: tf.Variable, s: number) => () => {
      const loss = f();
      if (s === 2 || s === 5 || (s >= 6 && loss.dataSync()[0]! > 0)) extra.assign(loss);
      return loss;
    };
    const replayed: boolean[] = [];
    for (let s = 0; s < 8; s++) {
      const batchA = a.batchAt(s);
      const batchB = b.batchAt(s);
      const probes = drawProbes(generator, a.vars, 1);
      const got = compiled.hutchinsonStep(withExtra(batchA.f, extraA, s), probes);
      const want = hutchinsonDiagonal(withExtra(batchB.f, extraB, s), b.vars, {
        probes,
        checkFinite: false,
      });
      replayed.push(got.replayed);
      assertClose([got.loss], [want.loss], 1e-5, `step ${s} loss`);
      assertClose([...a.moving, extraA], [...b.moving, extraB], 1e-5, `step ${s} assigned`);
      tf.dispose([got.loss, ...got.grads, ...got.diagonal, want.loss, ...want.grads]);
      tf.dispose([...want.diagonal, ...probes.flat(), ...batchA.tensors, ...batchB.tensors]);
    }
    // 0, 1 capture; 2 assigns more: op by op (captured: a graph of its own, provisional);
    // 3, 4 replay the first graph; 5 is the second shape's second capture (confirmed);
    // 6, 7: the stubbed forward pass has no values to read, so op by op.
    assert.deepEqual(
      replayed,
      [false, false, false, true, true, false, false, false],
      reasons.join('\n'),
    );
    assert.ok(
      reasons.some((r) => r.includes('the variables assigned')),
      reasons.join('\n'),
    );
    assert.ok(
      reasons.some((r) => r.includes("reads a tensor's value")),
      reasons.join('\n'),
    );
    assert.ok(extraA.dataSync()[0]! > 0);
    compiled.dispose();
    tf.dispose([extraA, extraB]);
    a.model.dispose();
    b.model.dispose();
  });

  it('refuses a step that assigns a variable outside the loss function, and runs it once', () => {
    const a = bnModel();
    const counter = tf.variable(tf.zeros([20]), false);
    const reasons: string[] = [];
    const compiler = new StepGraphCompiler<null>({ debug: (r) => reasons.push(r) });
    const start = tf.memory().numTensors;
    for (let s = 0; s < 3; s++) {
      const { tensors, f } = a.batchAt(s);
      const result = compiler.run(
        f,
        [],
        (forward) => {
          const { value, grads } = tf.variableGrads(forward, a.vars);
          tf.tidy(() => counter.assign(tf.add(counter, 1)));
          return { outputs: [value, ...a.vars.map((v) => grads[v.name]!)], extra: null };
        },
        a.vars,
      );
      assert.equal(result.replayed, false);
      tf.dispose([...result.outputs, ...tensors]);
    }
    assert.ok(
      reasons.some((r) => r.includes(`variable ${counter.name} is assigned outside the loss`)),
      reasons.join('\n'),
    );
    assert.equal(counter.dataSync()[0], 3, 'each step assigned once');
    assert.equal(tf.memory().numTensors, start, 'tensors leaked');
    compiler.dispose();
    counter.dispose();
    a.model.dispose();
  });
});
