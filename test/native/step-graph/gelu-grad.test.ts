/**
 * The hand-written GELU gradient of first-order step graphs (src/native/step-graph/gelu-grad.ts):
 * a recorded loss and gradients built with it (build.ts `geluGradients`) give op by op TF.js's
 * values to float32 rounding, on the char transformer (both GELUs rewritten, alone and with the
 * layer norms' rewrite) and on a GELU whose input and output have other readers (x's gradient
 * has other terms); the graph is smaller. The AdaHessian graph (CompiledSteps' hutchinson
 * compiler) is built without it, while its gradient compiler uses it.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { onBackend } from '../../helpers.js';
import { buildCharTransformer, softmaxCrossEntropy } from '../../../src/index.js';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import type { Recording } from '../../../src/native/step-graph/capture.js';
import {
  buildStepGraph,
  type BuildOptions,
  type GraphOutput,
} from '../../../src/native/step-graph/build.js';
import { rewriteGeluGradients } from '../../../src/native/step-graph/gelu-grad.js';
import { CompiledSteps } from '../../../src/native/step-graph/hutchinson-step.js';
import { assertClose, recordGradients, runBuiltGraph } from './helpers.js';

const unavailable = onnxRuntimeUnavailableReason();

/** A build's loss and gradients against op by op's (the recording's own results). */
function check(
  recording: Recording,
  outputs: GraphOutput[],
  want: tf.Tensor[],
  options: BuildOptions,
  what: string,
) {
  const built = buildStepGraph(recording, outputs, options);
  const got = runBuiltGraph(built, recording)[0]!.map((a, i) => tf.tensor(a, outputs[i]!.shape));
  assertClose([got[0]!], [want[0]!], 2e-6, `${what}, loss`);
  assertClose(got.slice(1), want.slice(1), 2e-5, `${what}, gradients`);
  // Each gradient also on its own scale, where it is not rounding.
  const scale = (t: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(t)).dataSync()[0]!);
  const largest = Math.max(...want.slice(1).map(scale));
  want.slice(1).forEach((w, i) => {
    if (scale(w) > 1e-4 * largest) assertClose([got[i + 1]!], [w], 1e-4, `${what}, gradient ${i}`);
  });
  tf.dispose(got);
  return built.nodeCount;
}

describe('hand-written GELU gradient (cpu)', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));

  it("gives the char transformer's loss and gradients to float32 rounding", () => {
    const before = tf.memory().numTensors;
    const model = buildCharTransformer({
      vocabSize: 11,
      contextLength: 6,
      dModel: 8,
      heads: 2,
      layers: 2,
      ffDim: 16,
      seed: 3,
      // The stock layers, whose recorded gradients the rewrite matches (a user's model's).
      compactGradients: false,
    });
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const x = tf.randomUniform([4, 6], 0, 11, 'int32', 5);
    const y = tf.tidy(() => tf.oneHot(tf.randomUniform([4, 6], 0, 11, 'int32', 6), 11));
    const f = () => softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) as tf.Scalar;
    const { result, recording, outputs } = recordGradients(f, vars);
    const rewrite = rewriteGeluGradients(recording, outputs);
    assert.equal(rewrite.rewritten, 2, `GELUs rewritten (refused: ${rewrite.refused})`);
    const plain = check(recording, outputs, result, {}, 'plain');
    const gelu = check(recording, outputs, result, { geluGradients: true }, 'GELU');
    const both = { geluGradients: true, layerNormGradients: true };
    const withLayerNorms = check(recording, outputs, result, both, 'GELU and layer norms');
    const layerNorms = buildStepGraph(recording, outputs, { layerNormGradients: true }).nodeCount;
    // Ten nodes of TF.js's gradient against six (the Square, Neg, Exp and constant product left).
    assert.ok(gelu <= plain - 2 * 4, `${gelu} nodes against ${plain}`);
    assert.ok(withLayerNorms <= layerNorms - 2 * 4, `${withLayerNorms} against ${layerNorms}`);
    tf.dispose([...result, x, y]);
    model.dispose();
    assert.equal(tf.memory().numTensors, before);
  });

  it('takes a GELU whose input and output have other readers', () => {
    const before = tf.memory().numTensors;
    const [B, T, D] = [3, 5, 8];
    const gelu = tf.layers.activation({ activation: 'gelu' });
    const w0 = tf.tidy(() => tf.variable(tf.randomNormal([D, D], 0, 1, 'float32', 1)));
    const w1 = tf.tidy(() => tf.variable(tf.randomNormal([D, 4], 0, 1, 'float32', 2)));
    const vars = [w0, w1];
    const x = tf.randomNormal([B * T, D], 0, 1, 'float32', 5);
    const f = () => {
      const h = tf.reshape(tf.matMul(x, w0), [B, T, D]);
      const y = gelu.apply(h) as tf.Tensor;
      // y read twice (a residual with h, and a product); h read by the GELU and twice more.
      const r = tf.add(y, tf.square(h));
      const p = tf.matMul(tf.reshape(tf.mul(y, h), [B * T, D]), w1);
      return tf.add(tf.sum(tf.square(r)), tf.sum(tf.tanh(p))) as tf.Scalar;
    };
    const { result, recording, outputs } = recordGradients(f, vars);
    const rewrite = rewriteGeluGradients(recording, outputs);
    assert.equal(rewrite.rewritten, 1, `rewritten (refused: ${rewrite.refused})`);
    const plain = check(recording, outputs, result, {}, 'plain');
    const byHand = check(recording, outputs, result, { geluGradients: true }, 'by hand');
    assert.ok(byHand < plain, `${byHand} against ${plain}`);
    tf.dispose([...result, x, w0, w1]);
    assert.equal(tf.memory().numTensors, before);
  });

  it('leaves the AdaHessian graph alone: the plain build', () => {
    const before = tf.memory().numTensors;
    const gelu = tf.layers.activation({ activation: 'gelu' });
    const w0 = tf.tidy(() => tf.variable(tf.randomNormal([4, 4], 0, 1, 'float32', 1)));
    const vars = [w0];
    const x = tf.randomNormal([6, 4], 0, 1, 'float32', 2);
    const f = () => tf.sum(tf.square(gelu.apply(tf.matMul(x, w0)) as tf.Tensor)) as tf.Scalar;
    // What each compiler built (its status's node count) against both builds of its capture.
    const built: Record<string, { plain: number; rewritten: number; compiled: number }> = {};
    const steps = new CompiledSteps(vars, { threads: 1 });
    for (const kind of ['hutchinson', 'gradient'] as const) {
      const compiler = steps[kind] as unknown as {
        compile(capture: { recording: Recording; outputs: GraphOutput[] }): unknown;
      };
      const compile = compiler.compile.bind(compiler);
      compiler.compile = (capture) => {
        // The compiler's own build options, but for this rewrite.
        const own = (compiler as unknown as { options: BuildOptions }).options;
        const nodes = (geluGradients: boolean) =>
          buildStepGraph(capture.recording, capture.outputs, { ...own, geluGradients }).nodeCount;
        const entry = compile(capture);
        built[kind] = {
          plain: nodes(false),
          rewritten: nodes(true),
          compiled: steps[kind].status.lastGraphNodes,
        };
        return entry;
      };
    }
    const probes = [vars.map((v, i) => tf.randomNormal(v.shape, 0, 1, 'float32', 10 + i))];
    const h = steps.hutchinsonStep(f, probes);
    const g = steps.gradientStep(f);
    tf.dispose([h.loss, ...h.grads, ...h.diagonal, g.loss, ...g.grads.filter((t) => t != null)]);
    tf.dispose(probes.flat());
    steps.dispose();
    const { hutchinson, gradient } = built;
    assert.ok(hutchinson != null && gradient != null, 'both compiled');
    const options = (steps.hutchinson as unknown as { options: { geluGradients?: boolean } })
      .options;
    assert.notEqual(options.geluGradients, true, 'the AdaHessian compiler is not asked');
    assert.equal(hutchinson.compiled, hutchinson.plain, 'AdaHessian graph: the plain build');
    assert.ok(gradient.rewritten < gradient.plain, JSON.stringify(gradient));
    assert.equal(gradient.compiled, gradient.rewritten, 'first-order graph: rewritten');
    tf.dispose([x, w0]);
    assert.equal(tf.memory().numTensors, before);
  });
});
