/**
 * Step graphs' sessions leave ONNX Runtime's common subexpression elimination out for steps
 * above 1 GiB of recorded values (cse.ts keepsCommonSubexpressionElimination): it merged
 * equal nodes far apart in the step and kept their value alive in between (ResNet-20's arena
 * twice as large; docs/PERFORMANCE.md, eighth session, ResNet-20's memory, second task).
 * Pinned here: the rule; a step with a repeated computation runs it twice without (ONNX
 * Runtime's profile), once with; and the char transformer's AdaHessian step (lr-text's kind of
 * graph, one thread) gives the same bits either way.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { buildCharTransformer, softmaxCrossEntropy } from '../../../src/index.js';
import { drawProbes } from '../../../src/optimizers/hutchinson.js';
import { RademacherGenerator } from '../../../src/optimizers/rademacher.js';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import { CompiledSteps } from '../../../src/native/step-graph/hutchinson-step.js';
import { keepsCommonSubexpressionElimination } from '../../../src/native/step-graph/cse.js';
import { onBackend } from '../../helpers.js';
import { withEnv } from './helpers.js';

const unavailable = onnxRuntimeUnavailableReason();
if (unavailable !== '') console.log(`# cse test skipped: ${unavailable}`);

/** Runs `body` with ADAHESSIAN_ORT_CSE set to `value` (undefined: unset). */
const withCse = <T>(value: string | undefined, body: () => T): T =>
  withEnv({ ADAHESSIAN_ORT_CSE: value }, body);

/** Three Hutchinson steps (two captures, one replay); the replay's values, as float32 bits. */
function replayedBits(
  vars: tf.Variable[],
  lossAt: (step: number) => { tensors: tf.Tensor[]; f: () => tf.Scalar },
  options: { profilePrefix?: string } = {},
): Uint32Array[] {
  const compiled = new CompiledSteps(vars, { threads: 1, ...options });
  const generator = new RademacherGenerator(5);
  let bits: Uint32Array[] = [];
  for (let s = 0; s < 3; s++) {
    const { tensors, f } = lossAt(s);
    const probes = drawProbes(generator, vars, 1);
    const got = compiled.hutchinsonStep(f, probes);
    const all = [got.loss, ...got.grads, ...got.diagonal];
    if (s === 2) {
      assert.ok(got.replayed, compiled.hutchinson.status.lastReason);
      bits = all.map((t) => new Uint32Array(Float32Array.from(t.dataSync()).buffer));
    }
    tf.dispose([...all, ...probes.flat(), ...tensors]);
  }
  compiled.dispose();
  return bits;
}

describe(
  'step graphs without common subexpression elimination',
  { skip: unavailable || false },
  () => {
    before(async () => onBackend('cpu'));

    it('keeps it up to 1 GiB of recorded values, unless ADAHESSIAN_ORT_CSE says otherwise', () => {
      const values = (elements: number[]) => ({ values: elements.map((n) => ({ shape: [n] })) });
      const small = values([2 ** 27, 2 ** 27]) as Parameters<
        typeof keepsCommonSubexpressionElimination
      >[0];
      const big = values([2 ** 27, 2 ** 27, 1]) as typeof small;
      withCse(undefined, () => {
        assert.equal(keepsCommonSubexpressionElimination(small), true);
        assert.equal(keepsCommonSubexpressionElimination(big), false);
      });
      withCse('1', () => assert.equal(keepsCommonSubexpressionElimination(big), true));
      withCse('0', () => assert.equal(keepsCommonSubexpressionElimination(small), false));
    });

    it('runs a repeated computation twice without it (once with), same values', () => {
      const w = tf.variable(tf.randomNormal([64, 64], 0, 0.1, 'float32', 1));
      const lossAt = (s: number) => {
        const x = tf.randomNormal([32, 64], 0, 1, 'float32', 10 + s);
        // The same product and exp twice in the tape: equal nodes for ONNX Runtime to merge.
        const f = () =>
          tf.tidy(() => tf.add(tf.sum(tf.exp(tf.matMul(x, w))), tf.sum(tf.exp(tf.matMul(x, w)))));
        return { tensors: [x], f: f as () => tf.Scalar };
      };
      const expRuns = (cse: string | undefined) => {
        const dir = mkdtempSync(join(tmpdir(), 'cse-test-'));
        try {
          const bits = withCse(cse, () =>
            replayedBits([w], lossAt, { profilePrefix: join(dir, 'p') }),
          );
          const file = readdirSync(dir).find((f) => f.endsWith('.json'))!;
          type Event = { cat: string; name: string; args?: { op_name?: string } };
          const events = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Event[];
          const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').length;
          const exps = events.filter(
            (e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.args?.op_name === 'Exp',
          ).length;
          return { bits, expsPerRun: exps / runs };
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      };
      const before = tf.memory().numTensors;
      const without = expRuns('0');
      const merged = expRuns(undefined);
      assert.ok(
        without.expsPerRun > merged.expsPerRun,
        `Exp nodes per run: ${without.expsPerRun} with ADAHESSIAN_ORT_CSE=0, ${merged.expsPerRun} by default (a small step)`,
      );
      assert.deepEqual(without.bits, merged.bits);
      assert.equal(tf.memory().numTensors, before, 'tensors leaked');
      w.dispose();
    });

    it("gives the char transformer's AdaHessian step the same bits as with it", () => {
      for (const [context, batch] of [
        [8, 4],
        [16, 2],
      ] as const) {
        const model = buildCharTransformer({
          vocabSize: 13,
          contextLength: context,
          dModel: 16,
          ffDim: 32,
          seed: 3,
        });
        const vars = model.trainableWeights.map((v) => v.read() as tf.Variable);
        const lossAt = (s: number) => {
          const ids = tf.randomUniform([batch, context], 0, 13, 'int32', 100 + s);
          const y = tf.tidy(() =>
            tf.oneHot(tf.randomUniform([batch, context], 0, 13, 'int32', 200 + s), 13),
          );
          const f = () => softmaxCrossEntropy(y, model.apply(ids) as tf.Tensor) as tf.Scalar;
          return { tensors: [ids, y], f };
        };
        const without = withCse('0', () => replayedBits(vars, lossAt));
        const merged = withCse('1', () => replayedBits(vars, lossAt));
        assert.equal(without.length, 1 + 2 * vars.length);
        assert.deepEqual(without, merged, `context ${context}, batch ${batch}`);
        model.dispose();
      }
    });
  },
);
