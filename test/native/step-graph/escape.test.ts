/**
 * Tensors that escape a replayed step's loss function (src/native/step-graph/escape.ts): a
 * count of correct predictions kept with tf.keep (as train's trainStep does) holds op by op's
 * count on every step, replayed or not, for AdaHessian's step and the plain gradient step; a
 * kept tensor the graph cannot compute (a kernel without a translation) runs the step op by
 * op; a kept placeholder of a stub that stopped throws when read; no tensor leaks.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { softmaxCrossEntropy } from '../../../src/index.js';
import { countCorrect } from '../../../src/cli/training.js';
import { drawProbes } from '../../../src/optimizers/hutchinson.js';
import { RademacherGenerator } from '../../../src/optimizers/rademacher.js';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import { CompiledSteps } from '../../../src/native/step-graph/hutchinson-step.js';
import { onBackend } from '../../helpers.js';

const unavailable = onnxRuntimeUnavailableReason();
if (unavailable !== '') console.log(`# step-graph escape test skipped: ${unavailable}`);

function mlp() {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [12], units: 16, activation: 'relu' }),
      tf.layers.dense({ units: 5 }),
    ],
  });
  const weights = model.weights.map((w, i) =>
    tf.randomNormal(w.shape as number[], 0, 0.5, 'float32', 70 + i),
  );
  model.setWeights(weights);
  tf.dispose(weights);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const batchAt = (step: number) => {
    const x = tf.randomNormal([32, 12], 0, 1, 'float32', 500 + step);
    const y = tf.tidy(() => tf.oneHot(tf.randomUniform([32], 0, 5, 'int32', 600 + step), 5));
    return { x, y };
  };
  return { model, vars, batchAt };
}

describe('tensors that escape a replayed step (cpu)', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));

  for (const kind of ['hutchinson', 'gradient'] as const) {
    it(`a kept count of correct predictions equals op by op's on every step (${kind} step)`, () => {
      const { model, vars, batchAt } = mlp();
      const compiled = new CompiledSteps(vars);
      const generator = new RademacherGenerator(4);
      const start = tf.memory().numTensors;
      const replayed: boolean[] = [];
      const counts: number[] = [];
      for (let s = 0; s < 6; s++) {
        const { x, y } = batchAt(s);
        // As trainStep: the count is kept inside the loss function, the last one wins.
        let correct: tf.Scalar | null = null;
        const f = () => {
          const logits = model.apply(x, { training: true }) as tf.Tensor;
          const count = tf.keep(countCorrect(logits, y));
          correct?.dispose();
          correct = count;
          return softmaxCrossEntropy(y, logits);
        };
        const want = tf.tidy(() => countCorrect(model.apply(x) as tf.Tensor, y).dataSync()[0]!);
        let outputs: tf.Tensor[];
        if (kind === 'hutchinson') {
          const probes = drawProbes(generator, vars, 1);
          const step = compiled.hutchinsonStep(f, probes);
          replayed.push(step.replayed);
          outputs = [step.loss, ...step.grads, ...step.diagonal, ...probes.flat()];
        } else {
          const step = compiled.gradientStep(f);
          replayed.push(step.replayed);
          outputs = [step.loss, ...step.grads.filter((g): g is tf.Tensor => g != null)];
        }
        const got = (correct as tf.Scalar | null)!.dataSync()[0]!;
        assert.equal(got, want, `step ${s}: count`);
        counts.push(got);
        tf.dispose([...outputs, correct!, x, y]);
      }
      const status = compiled[kind].status;
      assert.deepEqual(replayed, [false, false, true, true, true, true], status.lastReason);
      // Different batches, different counts: a stale or empty count could not pass.
      assert.ok(new Set(counts).size > 1, `counts ${counts}`);
      assert.equal(tf.memory().numTensors, start, 'tensors leaked');
      compiled.dispose();
      model.dispose();
    });
  }

  it('runs op by op when a kept tensor has no translation (Cumsum), with its values', () => {
    const { model, vars, batchAt } = mlp();
    const compiled = new CompiledSteps(vars);
    const start = tf.memory().numTensors;
    for (let s = 0; s < 4; s++) {
      const { x, y } = batchAt(s);
      let kept: tf.Tensor | null = null;
      const f = () => {
        const logits = model.apply(x, { training: true }) as tf.Tensor;
        kept?.dispose();
        kept = tf.keep(tf.cumsum(logits, 1));
        return softmaxCrossEntropy(y, logits);
      };
      const step = compiled.gradientStep(f);
      assert.equal(step.replayed, false, `step ${s}`);
      const want = tf.tidy(() => tf.cumsum(model.apply(x) as tf.Tensor, 1));
      assert.deepEqual(Array.from(kept!.dataSync()), Array.from(want.dataSync()), `step ${s}`);
      tf.dispose([step.loss, ...step.grads.filter((g): g is tf.Tensor => g != null)]);
      tf.dispose([kept!, want, x, y]);
    }
    assert.match(compiled.gradient.status.lastReason, /Cumsum/);
    assert.equal(tf.memory().numTensors, start, 'tensors leaked');
    compiled.dispose();
    model.dispose();
  });

  it("a tensor kept by a stub that stopped throws when read; the step's own holds its values", () => {
    const { model, vars, batchAt } = mlp();
    const reasons: string[] = [];
    const compiled = new CompiledSteps(vars, { debug: (r) => reasons.push(r) });
    const start = tf.memory().numTensors;
    const replayed: boolean[] = [];
    for (let s = 0; s < 6; s++) {
      const { x, y } = batchAt(s);
      // From step 2 on, the loss function keeps its logits (no other kernel call): the graph
      // compiled from steps 0 and 1 does not return them, so its stub stops, and a new graph
      // takes them on (confirmed on step 3).
      const kept: tf.Tensor[] = [];
      const f = () => {
        const logits = model.apply(x, { training: true }) as tf.Tensor;
        if (s >= 2) kept.push(tf.keep(logits));
        return softmaxCrossEntropy(y, logits);
      };
      const step = compiled.gradientStep(f);
      replayed.push(step.replayed);
      if (s >= 2) {
        const own = kept.at(-1)!;
        const want = model.apply(x) as tf.Tensor;
        const a = own.dataSync();
        const b = want.dataSync();
        for (let i = 0; i < b.length; i++) {
          assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-5, `step ${s}: ${a[i]} against ${b[i]}`);
        }
        want.dispose();
        // The stopped stubs' placeholders (the old graph tries first on every step).
        assert.ok(kept.length >= 2, `step ${s}: kept ${kept.length}`);
        for (const stale of kept.slice(0, -1)) {
          assert.throws(() => stale.dataSync()[0], /holds no values/);
        }
      }
      tf.dispose([step.loss, ...step.grads.filter((g): g is tf.Tensor => g != null)]);
      tf.dispose([...kept, x, y]);
    }
    assert.deepEqual(replayed, [false, false, false, false, true, true], reasons.join('\n'));
    assert.ok(
      reasons.some((r) => /kept a tensor .* the compiled step does not return/.test(r)),
      reasons.join('\n'),
    );
    assert.equal(tf.memory().numTensors, start, 'tensors leaked');
    compiled.dispose();
    model.dispose();
  });
});
