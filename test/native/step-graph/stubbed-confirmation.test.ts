/**
 * A step graph's confirming capture (the second step of a shape) is recorded with every kernel
 * stubbed (src/native/step-graph/capture.ts, step-graph.ts step 3): no kernel's arithmetic
 * runs, so that step never holds op by op's memory beside the graph's. Pinned here: the
 * confirming step runs no kernel and still gives op by op's values; a step that differs from
 * the compiled one part way (after batch norm assigned its statistics and a tensor was kept),
 * or that reads a value, is captured for real with nothing of the stubbed attempt left
 * (statistics restored, the kept placeholder poisoned, no tensor leaked).
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { softmaxCrossEntropy } from '../../../src/index.js';
import { drawProbes, hutchinsonDiagonal } from '../../../src/optimizers/hutchinson.js';
import { RademacherGenerator } from '../../../src/optimizers/rademacher.js';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import { wrapAllKernels } from '../../../src/native/step-graph/capture.js';
import { CompiledSteps } from '../../../src/native/step-graph/hutchinson-step.js';
import { ResNetBatchNormalization } from '../../../src/models/resnet-batch-norm.js';
import { onBackend } from '../../helpers.js';
import { assertClose } from './helpers.js';

const unavailable = onnxRuntimeUnavailableReason();
if (unavailable !== '')
  console.log(`# step-graph stubbed-confirmation test skipped: ${unavailable}`);

/** Dense, ResNet-20's batch norm (20 channels: its statistics are graph inputs), relu, dense. */
function bnModel() {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [12], units: 20 }),
      new ResNetBatchNormalization({ axis: -1, momentum: 0.9, epsilon: 1e-3 }),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.dense({ units: 5 }),
    ],
  });
  const weights = model.weights.map((w, i) =>
    tf.tidy(() => {
      const r = tf.randomNormal(w.shape as number[], 0, 0.5, 'float32', 70 + i);
      return /gamma|moving_variance/.test(w.name) ? tf.add(tf.abs(r), 0.5) : r;
    }),
  );
  model.setWeights(weights);
  tf.dispose(weights);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const moving = model.weights.filter((w) => !w.trainable).map((w) => w.read() as tf.Variable);
  const batchAt = (step: number) => {
    const x = tf.randomNormal([8, 12], 0, 1, 'float32', 500 + step);
    const y = tf.tidy(() => tf.oneHot(tf.randomUniform([8], 0, 5, 'int32', 600 + step), 5));
    const f = () => softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor);
    return { tensors: [x, y], f };
  };
  return { model, vars, moving, batchAt };
}

/** Counts the kernel calls that really run (the capture wraps these wrappers). */
function countKernels(): { count: () => number; undo: () => void } {
  let calls = 0;
  const undo = wrapAllKernels(tf.getBackend(), (config) => (args) => {
    calls++;
    return config.kernelFunc(args);
  });
  return { count: () => calls, undo };
}

describe('step graphs confirmed without arithmetic (cpu)', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));

  it("confirms a graph on its shape's second step without running a kernel, with op by op's values", () => {
    const a = bnModel();
    const b = bnModel();
    const compiled = new CompiledSteps(a.vars);
    const generator = new RademacherGenerator(4);
    const start = tf.memory().numTensors;
    const kernels = countKernels();
    const kernelsPerStep: number[] = [];
    const replayed: boolean[] = [];
    try {
      for (let s = 0; s < 3; s++) {
        const batchA = a.batchAt(s);
        const batchB = b.batchAt(s);
        const probes = drawProbes(generator, a.vars, 1);
        const before = kernels.count();
        const got = compiled.hutchinsonStep(batchA.f, probes);
        kernelsPerStep.push(kernels.count() - before);
        replayed.push(got.replayed);
        const want = hutchinsonDiagonal(batchB.f, b.vars, { probes, checkFinite: false });
        assertClose([got.loss], [want.loss], 1e-5, `step ${s} loss`);
        assertClose(got.grads, want.grads, 1e-4, `step ${s} gradients`);
        assertClose(got.diagonal, want.diagonal, 1e-4, `step ${s} diagonal`);
        assertClose(a.moving, b.moving, 1e-5, `step ${s} moving statistics`);
        tf.dispose([got.loss, ...got.grads, ...got.diagonal, want.loss, ...want.grads]);
        tf.dispose([...want.diagonal, ...probes.flat(), ...batchA.tensors, ...batchB.tensors]);
      }
    } finally {
      kernels.undo();
    }
    const { status } = compiled.hutchinson;
    assert.deepEqual(replayed, [false, false, true], status.lastReason);
    assert.equal(status.captures, 2);
    assert.equal(status.stubbedCaptures, 1, status.lastReason);
    // The first step runs every kernel op by op; the confirming one none (the graph computes
    // it); the replay only its stubbed forward pass, which runs no kernel either.
    assert.ok(kernelsPerStep[0]! > 50, `first step: ${kernelsPerStep[0]} kernel calls`);
    assert.deepEqual(kernelsPerStep.slice(1), [0, 0]);
    assert.equal(tf.memory().numTensors, start, 'tensors leaked');
    compiled.dispose();
    a.model.dispose();
    b.model.dispose();
  });

  it('captures for real a second step that differs part way or reads a value, leaving nothing of the stubbed attempt', () => {
    for (const kind of ['differs', 'reads'] as const) {
      const a = bnModel();
      const b = bnModel();
      const compiled = new CompiledSteps(a.vars);
      const generator = new RademacherGenerator(6);
      const start = tf.memory().numTensors;
      const kept: tf.Tensor[] = [];
      for (let s = 0; s < 2; s++) {
        const batchA = a.batchAt(s);
        const batchB = b.batchAt(s);
        // Step 1: after batch norm has assigned its statistics and a tensor was kept, one more
        // kernel than step 0 (differs), or the loss's value read (reads).
        const second = (f: () => tf.Scalar, keep: tf.Tensor[]) => () => {
          const loss = f();
          keep.push(tf.keep(tf.mul(loss, 2)));
          if (s === 0) return loss;
          if (kind === 'reads') return loss.dataSync()[0]! > -1 ? loss : tf.neg(loss);
          return tf.add(loss, tf.scalar(0.5)) as tf.Scalar;
        };
        const probes = drawProbes(generator, a.vars, 1);
        const got = compiled.hutchinsonStep(second(batchA.f, kept), probes);
        const keptB: tf.Tensor[] = [];
        const want = hutchinsonDiagonal(second(batchB.f, keptB), b.vars, {
          probes,
          checkFinite: false,
        });
        assertClose([got.loss], [want.loss], 1e-5, `${kind}: step ${s} loss`);
        assertClose(got.grads, want.grads, 1e-4, `${kind}: step ${s} gradients`);
        assertClose(got.diagonal, want.diagonal, 1e-4, `${kind}: step ${s} diagonal`);
        // Restored, then assigned once by the real capture: one update, as op by op.
        assertClose(a.moving, b.moving, 1e-5, `${kind}: step ${s} moving statistics`);
        tf.dispose([got.loss, ...got.grads, ...got.diagonal, want.loss, ...want.grads]);
        tf.dispose([...want.diagonal, ...probes.flat(), ...batchA.tensors, ...batchB.tensors]);
        tf.dispose(keptB);
      }
      const { status } = compiled.hutchinson;
      assert.equal(status.stubbedCaptures, 1, `${kind}: ${status.lastReason}`);
      assert.equal(status.captures, 3, `${kind}: the stubbed attempt, then a real capture`);
      // Kept twice in step 1: by the stubbed attempt (a placeholder, poisoned), then for real.
      assert.equal(kept.length, 3);
      assert.throws(() => kept[1]!.dataSync()[0], /step graphs: this tensor was kept/);
      assert.ok(Number.isFinite(kept[2]!.dataSync()[0]!));
      tf.dispose(kept);
      assert.equal(tf.memory().numTensors, start, `${kind}: tensors leaked`);
      compiled.dispose();
      a.model.dispose();
      b.model.dispose();
    }
  });
});
