/**
 * The hand-written layer-norm gradient of first-order step graphs
 * (src/native/step-graph/layer-norm-grad.ts): a recorded loss and gradients built with it
 * (build.ts `layerNormGradients`) give op by op TF.js's values to float32 rounding, on the char
 * transformer (all five layer norms rewritten) and on a layer norm whose output feeds two
 * readers and whose input's gradient has other terms; the graph is smaller. The AdaHessian
 * graph (CompiledSteps' hutchinson compiler) is built without it (the plain build's graph,
 * which the rewrite would change), while its gradient compiler uses it.
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
import { rewriteLayerNormGradients } from '../../../src/native/step-graph/layer-norm-grad.js';
import { CompiledSteps } from '../../../src/native/step-graph/hutchinson-step.js';
import { assertClose, recordGradients, runBuiltGraph } from './helpers.js';

const unavailable = onnxRuntimeUnavailableReason();

/** Both builds' outputs against op by op's (the recording's own results). */
function checkBoth(recording: Recording, outputs: GraphOutput[], want: tf.Tensor[], what: string) {
  const plain = buildStepGraph(recording, outputs);
  const byHand = buildStepGraph(recording, outputs, { layerNormGradients: true });
  const asTensors = (arrays: Float32Array[]) =>
    arrays.map((a, i) => tf.tensor(a, outputs[i]!.shape));
  const gotPlain = asTensors(runBuiltGraph(plain, recording)[0]!);
  const gotByHand = asTensors(runBuiltGraph(byHand, recording)[0]!);
  // The loss, and the gradients as one group (a bias just before a layer norm has a gradient
  // of zero up to rounding: relative to itself, it is all rounding).
  assertClose([gotByHand[0]!], [want[0]!], 2e-6, `${what}, by hand, loss`);
  assertClose(gotByHand.slice(1), want.slice(1), 2e-5, `${what}, by hand, gradients`);
  assertClose(gotPlain.slice(1), want.slice(1), 2e-5, `${what}, plain, gradients`);
  // Each gradient also on its own scale, where it is not rounding.
  const scale = (t: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(t)).dataSync()[0]!);
  const largest = Math.max(...want.slice(1).map(scale));
  want.slice(1).forEach((w, i) => {
    if (scale(w) > 1e-4 * largest) {
      assertClose([gotByHand[i + 1]!], [w], 1e-4, `${what}, by hand, gradient ${i}`);
    }
  });
  tf.dispose([...gotPlain, ...gotByHand]);
  return { plain, byHand };
}

describe('hand-written layer-norm gradient (cpu)', { skip: unavailable || false }, () => {
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
    const rewrite = rewriteLayerNormGradients(recording, outputs);
    assert.equal(rewrite.rewritten, 5, `layer norms rewritten (refused: ${rewrite.refused})`);
    const { plain, byHand } = checkBoth(recording, outputs, result, 'transformer');
    assert.ok(
      byHand.nodeCount < plain.nodeCount - 5 * 40,
      `${byHand.nodeCount} nodes against ${plain.nodeCount}`,
    );
    tf.dispose([...result, x, y]);
    model.dispose();
    assert.equal(tf.memory().numTensors, before);
  });

  it('takes a layer norm whose output has two readers and whose input has other gradients', () => {
    const before = tf.memory().numTensors;
    const [B, T, D] = [3, 5, 8];
    const ln = tf.layers.layerNormalization({ axis: -1, epsilon: 1e-3 });
    ln.build([B, T, D]);
    const w0 = tf.tidy(() => tf.variable(tf.randomNormal([D, D], 0, 1, 'float32', 1)));
    const w1 = tf.tidy(() => tf.variable(tf.randomNormal([D, 4], 0, 1, 'float32', 2)));
    tf.tidy(() => {
      const [gamma, beta] = ln.trainableWeights.map((w) => w.read() as tf.Variable);
      gamma!.assign(tf.randomUniform([D], 0.5, 1.5, 'float32', 3));
      beta!.assign(tf.randomNormal([D], 0, 0.1, 'float32', 4));
    });
    const vars = [w0, w1, ...ln.trainableWeights.map((w) => w.read() as tf.Variable)];
    const x = tf.randomNormal([B * T, D], 0, 1, 'float32', 5);
    const f = () => {
      const h = tf.reshape(tf.matMul(x, w0), [B, T, D]);
      const y = ln.apply(h) as tf.Tensor;
      // y read twice (a residual with h, and a product); h read by the layer norm and twice more.
      const r = tf.add(y, tf.square(h));
      const p = tf.matMul(tf.reshape(tf.mul(y, h), [B * T, D]), w1);
      return tf.add(tf.sum(tf.square(r)), tf.sum(tf.tanh(p))) as tf.Scalar;
    };
    const { result, recording, outputs } = recordGradients(f, vars);
    const rewrite = rewriteLayerNormGradients(recording, outputs);
    assert.equal(rewrite.rewritten, 1, `rewritten (refused: ${rewrite.refused})`);
    const { plain, byHand } = checkBoth(recording, outputs, result, 'two readers');
    assert.ok(byHand.nodeCount < plain.nodeCount, `${byHand.nodeCount} against ${plain.nodeCount}`);
    tf.dispose([...result, x, w0, w1]);
    ln.weights.forEach((w) => w.dispose());
    assert.equal(tf.memory().numTensors, before);
  });

  it('leaves the AdaHessian graph alone: the plain build', () => {
    const before = tf.memory().numTensors;
    const ln = tf.layers.layerNormalization({ axis: -1 });
    ln.build([2, 3, 4]);
    const w0 = tf.tidy(() => tf.variable(tf.randomNormal([4, 4], 0, 1, 'float32', 1)));
    const vars = [w0, ...ln.trainableWeights.map((w) => w.read() as tf.Variable)];
    const x = tf.randomNormal([6, 4], 0, 1, 'float32', 2);
    const f = () =>
      tf.sum(
        tf.square(ln.apply(tf.reshape(tf.matMul(x, w0), [2, 3, 4])) as tf.Tensor),
      ) as tf.Scalar;
    // What each compiler built (its status's node count) against both builds of its capture.
    const built: Record<
      string,
      { plain: number; rewritten: number; compiled: number; refused: string[] }
    > = {};
    const steps = new CompiledSteps(vars, { threads: 1 });
    for (const kind of ['hutchinson', 'gradient'] as const) {
      const compiler = steps[kind] as unknown as {
        compile(capture: { recording: Recording; outputs: GraphOutput[] }): unknown;
      };
      const compile = compiler.compile.bind(compiler);
      compiler.compile = (capture) => {
        // The compiler's own build options, but for this rewrite.
        const own = (compiler as unknown as { options: BuildOptions }).options;
        const nodes = (layerNormGradients: boolean) =>
          buildStepGraph(capture.recording, capture.outputs, { ...own, layerNormGradients })
            .nodeCount;
        const entry = compile(capture);
        built[kind] = {
          plain: nodes(false),
          rewritten: nodes(true),
          compiled: steps[kind].status.lastGraphNodes,
          refused: rewriteLayerNormGradients(capture.recording, capture.outputs).refused,
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
    // The rewrite would change the AdaHessian graph (its gradient part), so this can fail.
    // Not asked to (the gate), and it would refuse anyway (the sweep reads the cone).
    const options = (steps.hutchinson as unknown as { options: { layerNormGradients?: boolean } })
      .options;
    assert.notEqual(options.layerNormGradients, true, 'the AdaHessian compiler is not asked');
    assert.equal(hutchinson.compiled, hutchinson.plain, 'AdaHessian graph: the plain build');
    assert.equal(hutchinson.rewritten, hutchinson.plain, JSON.stringify(hutchinson));
    assert.ok(gradient.rewritten < gradient.plain, JSON.stringify(gradient));
    assert.equal(gradient.compiled, gradient.rewritten, 'first-order graph: rewritten');
    tf.dispose([x, w0]);
    ln.weights.forEach((w) => w.dispose());
    assert.equal(tf.memory().numTensors, before);
  });
});
