/**
 * The check a new step graph must pass before its values are used (disagreement() in
 * step-graph.ts): a translation that is wrong gives a graph that is refused, naming the output
 * that differs, and the step's values are op by op's. The check's per-element bound is loose
 * (deep batch-norm networks flip ReLU masks in float32); these pin that the L2 bound still
 * catches a wrong translation, gross or small.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { buildMlp, softmaxCrossEntropy } from '../../../src/index.js';
import { drawProbes, hutchinsonDiagonal } from '../../../src/optimizers/hutchinson.js';
import { RademacherGenerator } from '../../../src/optimizers/rademacher.js';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import { CompiledSteps } from '../../../src/native/step-graph/hutchinson-step.js';
import type { CheckMargin } from '../../../src/native/step-graph/step-graph.js';
import { TRANSLATIONS, type TranslationContext } from '../../../src/native/step-graph/translate.js';
import { onBackend } from '../../helpers.js';

const unavailable = onnxRuntimeUnavailableReason();

type Rule = (ctx: TranslationContext) => void;

/** Runs four Hutchinson steps of a small MLP with `kernel` translated by `rule`. */
function runWith(kernel: string, rule: Rule | null) {
  const table = TRANSLATIONS as Record<string, Rule>;
  const original = table[kernel]!;
  assert.ok(original !== undefined, `${kernel} has a translation`);
  if (rule !== null) table[kernel] = rule;
  const model = buildMlp({ seed: 4, inputShape: [12], hidden: 10, classes: 5 });
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const reasons: string[] = [];
  const compiled = new CompiledSteps(vars, { debug: (r) => reasons.push(r) });
  const generator = new RademacherGenerator(2);
  const replayed: boolean[] = [];
  let worst = 0;
  let margin: CheckMargin | null = null;
  try {
    for (let s = 0; s < 4; s++) {
      const x = tf.randomNormal([8, 12], 0, 1, 'float32', 10 + s);
      const y = tf.tidy(() => tf.oneHot(tf.randomUniform([8], 0, 5, 'int32', 20 + s), 5));
      const f = () => softmaxCrossEntropy(y, model.apply(x) as tf.Tensor);
      const probes = drawProbes(generator, vars, 1);
      const got = compiled.hutchinsonStep(f, probes);
      const want = hutchinsonDiagonal(f, vars, { probes, checkFinite: false });
      replayed.push(got.replayed);
      const a = [got.loss, ...got.grads, ...got.diagonal];
      const b = [want.loss, ...want.grads, ...want.diagonal];
      a.forEach((t, i) => {
        const d = tf.tidy(() => tf.max(tf.abs(tf.sub(t, b[i]!))).dataSync()[0]!);
        worst = Math.max(worst, d);
      });
      tf.dispose([...a, ...b, ...probes.flat(), x, y]);
      margin ??= compiled.hutchinson.status.lastCheck;
    }
  } finally {
    table[kernel] = original;
    compiled.dispose();
    model.dispose();
  }
  return { replayed, reasons, worst, margin };
}

describe('step graphs: the check against op by op (cpu)', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));

  it('accepts the right translations', () => {
    const before = tf.memory().numTensors;
    const { replayed, worst, margin } = runWith('Relu', null);
    assert.deepEqual(replayed, [false, false, true, true]);
    assert.ok(worst < 1e-4, `worst ${worst}`);
    // The check's margins (status.lastCheck): rounding only, far from the tolerances.
    assert.ok(margin != null && margin.l2 < 1e-2 && margin.element < 1e-2, JSON.stringify(margin));
    assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
  });

  it('refuses a graph whose relu is the identity (a gross error), with op by op values', () => {
    const { replayed, reasons, worst } = runWith('Relu', (ctx) =>
      ctx.node('Identity', [ctx.input('x')], [ctx.output()]),
    );
    assert.ok(!replayed.includes(true), String(replayed));
    assert.ok(
      reasons.some((r) => /differs by/.test(r)),
      reasons.join('\n'),
    );
    assert.ok(worst < 1e-4, `the step's values are op by op's: worst ${worst}`);
  });

  it('refuses a graph whose relu leaks 3 % of negative inputs (a small error)', () => {
    const { replayed, reasons, margin } = runWith('Relu', (ctx) =>
      ctx.node('LeakyRelu', [ctx.input('x')], [ctx.output()], {
        alpha: { kind: 'float', value: 0.03 },
      }),
    );
    assert.ok(!replayed.includes(true), String(replayed));
    assert.ok(
      reasons.some((r) => /differs by/.test(r)),
      reasons.join('\n'),
    );
    assert.ok(margin != null && margin.l2 > 1, JSON.stringify(margin));
  });
});
