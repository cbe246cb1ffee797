/**
 * build.ts's graph rewrites together (filter-grad-pairs.ts, nchwc-duplicates.ts, conv-pairs.ts,
 * conv-bias.ts, pool-relu-masks.ts) on one convolution model none of them was written for: a
 * depthwise conv, a pointwise one, a conv output read by two convs and a residual Add, a ReLU
 * layer before a tiling max pool, an even kernel with stride 2 and 'same' padding, a conv
 * without bias, a 3x3 stride-2 'same' max pool (windows overlap), batch 2.
 * Pinned: (1) the passes fire on it and move the built AdaHessian graph's outputs by rounding
 * only; (2) what the optimizers use (CompiledSteps), AdaHessian and first-order, on one and two
 * threads: the graph is used (checked, confirmed, replayed; a refused graph silently costs
 * speed) and every step agrees with op by op on TF.js's stock cpu kernels.
 * bench/speed/rewrite-patterns.ts runs the wider sweep (one pattern per model, and the passes
 * one at a time); docs/PERFORMANCE.md, eleventh session, engineer A, second task.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { softmaxCrossEntropy } from '../../../src/index.js';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import { buildStepGraph } from '../../../src/native/step-graph/build.js';
import { CompiledSteps } from '../../../src/native/step-graph/hutchinson-step.js';
import { nchwcBlockSize } from '../../../src/native/step-graph/translate-conv.js';
import { drawProbes, hutchinsonDiagonal } from '../../../src/optimizers/hutchinson.js';
import { RademacherGenerator } from '../../../src/optimizers/rademacher.js';
import { onBackend } from '../../helpers.js';
import { recordHutchinsonStep, runBuiltGraph, withEnv } from './helpers.js';

const unavailable = onnxRuntimeUnavailableReason();
if (unavailable !== '') console.log(`# rewrites-together tests skipped: ${unavailable}`);

/** The variables that turn each pass off. */
const PASSES_OFF: [string, string][] = [
  ['ADAHESSIAN_FILTER_GRAD_PAIRS', '0'],
  ['ADAHESSIAN_NCHWC_DUPLICATES', '0'],
  ['ADAHESSIAN_CONV_PAIRS', '0'],
  ['ADAHESSIAN_CONV_BIAS', '0'],
  ['ADAHESSIAN_POOL_MASKS', '0'],
];

/**
 * Labels of at most 16 elements would be baked into the graph as constants (step-graph.ts: small
 * tensors that existed before the step) and refuse it when they change: batch 2 needs > 8 classes.
 */
const CLASSES = 10;

function buildModel(): tf.LayersModel {
  const l = tf.layers;
  let seed = 0;
  const init = () => tf.initializers.heNormal({ seed: ++seed });
  const bias = () => tf.initializers.randomNormal({ stddev: 0.1, seed: 100 + ++seed });
  const conv = (filters: number, kernelSize: number, more: object = {}) =>
    l.conv2d({
      filters,
      kernelSize,
      padding: 'same',
      activation: 'relu',
      kernelInitializer: init(),
      biasInitializer: bias(),
      ...more,
    });
  const on = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) =>
    layer.apply(x) as tf.SymbolicTensor;
  const x = tf.input({ shape: [12, 12, 4] });
  const depthwise = l.depthwiseConv2d({
    kernelSize: 3,
    padding: 'same',
    activation: 'relu',
    depthwiseInitializer: init(),
    biasInitializer: bias(),
  });
  const h = on(conv(16, 1), on(depthwise, x));
  const a = on(conv(16, 3, { activation: 'linear' }), h);
  const b = on(conv(16, 1, { activation: 'linear' }), h);
  const r = on(l.reLU(), on(l.add(), [a, b, h]));
  const p = on(l.maxPooling2d({ poolSize: 2 }), r);
  const c = on(conv(16, 2, { strides: 2 }), p);
  const d = on(conv(16, 3, { useBias: false }), c);
  const q = on(l.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }), d);
  const out = on(l.dense({ units: CLASSES, kernelInitializer: init() }), on(l.flatten(), q));
  return tf.model({ inputs: x, outputs: out });
}

/** disagreement()'s L2 ratio (step-graph.ts): L2 error / its tolerance, worst output; 1 refuses. */
function l2Ratio(got: ArrayLike<number>[], want: ArrayLike<number>[]): number {
  let overall = 0;
  for (const w of want)
    for (let i = 0; i < w.length; i++) overall = Math.max(overall, Math.abs(w[i]!));
  let worst = 0;
  want.forEach((b, k) => {
    const a = got[k]!;
    let e = 0;
    let n = 0;
    for (let i = 0; i < b.length; i++) {
      e += (a[i]! - b[i]!) ** 2;
      n += b[i]! ** 2;
    }
    const r = Math.sqrt(e) / (2e-2 * Math.sqrt(n) + 1e-4 * overall * Math.sqrt(b.length));
    worst = Math.max(worst, Number.isNaN(r) ? Infinity : r);
  });
  return worst;
}

describe(
  "step graphs: build.ts's rewrites together on a model they were not written for",
  { skip: unavailable || nchwcBlockSize() === 0 || false },
  () => {
    before(async () => onBackend('cpu'));

    it('the passes fire, and move the built AdaHessian graph by rounding only', () => {
      const tensorsBefore = tf.memory().numTensors;
      const model = buildModel();
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const x = tf.randomUniform([2, 12, 12, 4], 0, 1, 'float32', 1);
      const y = tf.tidy(() => tf.oneHot(tf.randomUniform([2], 0, CLASSES, 'int32', 2), CLASSES));
      const { result, recording, outputs, probes } = recordHutchinsonStep(
        () => softmaxCrossEntropy(y, model.apply(x) as tf.Tensor),
        vars,
        3,
      );
      const all = buildStepGraph(recording, outputs);
      const none = withEnv(Object.fromEntries(PASSES_OFF), () =>
        buildStepGraph(recording, outputs),
      );
      // Each pass alone off: more nodes, but pool-relu-masks (which trades a full-size product
      // for pooled-size ones) and conv-bias (which needs conv-pairs' Conv with Sum here).
      const fired = PASSES_OFF.map((off) =>
        withEnv(
          Object.fromEntries([off]),
          () => buildStepGraph(recording, outputs).nodeCount - all.nodeCount,
        ),
      );
      assert.ok(
        fired.every((d) => d !== 0),
        `node count with each pass off minus all on: ${fired}`,
      );
      const [on] = runBuiltGraph(all, recording);
      const [off] = runBuiltGraph(none, recording);
      const opByOp = result.map((t) => t.dataSync());
      // Measured 1e-5 (on vs off) and 2e-5 (on vs op by op) of the check's bound.
      assert.ok(l2Ratio(on!, off!) < 1e-3, `passes on vs off: ${l2Ratio(on!, off!)}`);
      assert.ok(l2Ratio(on!, opByOp) < 1e-3, `graph vs op by op: ${l2Ratio(on!, opByOp)}`);
      tf.dispose([...result, ...probes.flat(), x, y]);
      model.dispose();
      assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensors leaked');
    });

    for (const threads of [1, 2]) {
      it(`CompiledSteps on ${threads} thread(s): both graphs used, every step as op by op`, () => {
        const tensorsBefore = tf.memory().numTensors;
        const model = buildModel();
        const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
        const reasons: string[] = [];
        const compiled = new CompiledSteps(vars, { threads, debug: (r) => reasons.push(r) });
        const generator = new RademacherGenerator(5);
        for (const kind of ['adahessian', 'first-order'] as const) {
          const replayed: boolean[] = [];
          for (let s = 0; s < 3; s++) {
            const x = tf.randomUniform([2, 12, 12, 4], 0, 1, 'float32', 10 + s);
            const y = tf.tidy(() =>
              tf.oneHot(tf.randomUniform([2], 0, CLASSES, 'int32', 20 + s), CLASSES),
            );
            const f = () => softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) as tf.Scalar;
            let got: tf.Tensor[];
            let want: tf.Tensor[];
            if (kind === 'adahessian') {
              const probes = drawProbes(generator, vars, 1);
              const step = compiled.hutchinsonStep(f, probes);
              replayed.push(step.replayed);
              got = [step.loss, ...step.grads, ...step.diagonal];
              const est = hutchinsonDiagonal(f, vars, { probes, checkFinite: false });
              want = [est.loss, ...est.grads, ...est.diagonal];
              tf.dispose(probes.flat());
            } else {
              const step = compiled.gradientStep(f);
              replayed.push(step.replayed);
              got = [step.loss, ...step.grads.map((g) => g!)];
              const { value, grads } = tf.variableGrads(f, vars);
              want = [value, ...vars.map((v) => grads[v.name]!)];
            }
            const ratio = l2Ratio(
              got.map((t) => t.dataSync()),
              want.map((t) => t.dataSync()),
            );
            // Measured up to 5e-5; the check refuses at 1.
            assert.ok(ratio < 1e-3, `${kind} step ${s}: ${ratio} of the check's L2 bound`);
            tf.dispose([...got, ...want, x, y]);
          }
          // Checked and used, confirmed, replayed.
          assert.deepEqual(replayed, [false, false, true], `${kind}: ${reasons.join(' | ')}`);
        }
        assert.deepEqual(reasons, [], 'no step ran op by op');
        compiled.dispose();
        model.dispose();
        assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensors leaked');
      });
    }
  },
);
