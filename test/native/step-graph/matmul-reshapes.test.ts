/**
 * Products without their no-op Reshapes (build.ts `elideMatMulReshapes`, translate.ts): where
 * TF.js's output shape is numpy's, the MatMul writes the output itself. The values are op by
 * op's to float32 rounding for products of every kind (transposed operands, a broadcast batch
 * of another rank, 2-D), and the char transformer's first-order graph is smaller and gives the
 * same bits as without; CompiledSteps asks for it in its gradient compiler only (in the
 * AdaHessian graph the fusions it allows change the rounding).
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { onBackend } from '../../helpers.js';
import { buildCharTransformer, softmaxCrossEntropy } from '../../../src/index.js';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import { buildStepGraph } from '../../../src/native/step-graph/build.js';
import { CompiledSteps } from '../../../src/native/step-graph/hutchinson-step.js';
import { assertClose, recordGradients, runBuiltGraph } from './helpers.js';

const unavailable = onnxRuntimeUnavailableReason();

describe('products without their no-op Reshapes (cpu)', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));

  it("gives op by op's values for products of every kind", () => {
    const before = tf.memory().numTensors;
    const seeded = (shape: number[], seed: number) =>
      tf.tidy(() => tf.variable(tf.randomNormal(shape, 0, 1, 'float32', seed)));
    const a = seeded([2, 3, 4, 5], 1);
    const b = seeded([2, 3, 5, 6], 2);
    // Not differentiated: TF.js's gradient of a broadcast batch does not reduce it.
    const w = tf.randomNormal([5, 6], 0, 1, 'float32', 3);
    const m = seeded([4, 5], 4);
    const vars = [a, b, m];
    const f = () =>
      tf.addN([
        tf.sum(tf.square(tf.matMul(a, b))), // same batch: elided
        tf.sum(tf.tanh(tf.matMul(b, a, true, true))), // both transposed: elided
        tf.sum(tf.square(tf.matMul(a, w))), // batch broadcast from rank 2: kept
        tf.sum(tf.exp(tf.matMul(m, m, false, true))), // 2-D: elided
        tf.sum(tf.square(tf.mul(tf.matMul(a, b, false, false), 0.5))), // a scale after it
      ]) as tf.Scalar;
    const { result, recording, outputs } = recordGradients(f, vars);
    const plain = buildStepGraph(recording, outputs);
    const bare = buildStepGraph(recording, outputs, { elideMatMulReshapes: true });
    const got = runBuiltGraph(bare, recording)[0]!.map((x, i) => tf.tensor(x, outputs[i]!.shape));
    assertClose([got[0]!], [result[0]!], 2e-6, 'loss');
    result.slice(1).forEach((r, i) => assertClose([got[i + 1]!], [r], 2e-5, `gradient ${i}`));
    assert.ok(bare.nodeCount < plain.nodeCount, `${bare.nodeCount} against ${plain.nodeCount}`);
    tf.dispose([...got, ...result, ...vars, w]);
    assert.equal(tf.memory().numTensors, before);
  });

  it("leaves the char transformer's first-order values bit for bit; AdaHessian not asked", () => {
    const before = tf.memory().numTensors;
    const model = buildCharTransformer({
      vocabSize: 11,
      contextLength: 6,
      dModel: 8,
      heads: 2,
      layers: 2,
      ffDim: 16,
      seed: 3,
    });
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const x = tf.randomUniform([4, 6], 0, 11, 'int32', 5);
    const y = tf.tidy(() => tf.oneHot(tf.randomUniform([4, 6], 0, 11, 'int32', 6), 11));
    const f = () => softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) as tf.Scalar;
    const { result, recording, outputs } = recordGradients(f, vars);
    const firstOrder = { layerNormGradients: true, geluGradients: true };
    const plain = buildStepGraph(recording, outputs, firstOrder);
    const bare = buildStepGraph(recording, outputs, { ...firstOrder, elideMatMulReshapes: true });
    const [want, got] = [plain, bare].map((g) => runBuiltGraph(g, recording)[0]!);
    want!.forEach((w, i) => assert.deepEqual(got![i], w, `output ${i}`));
    // The attention's 4 products and 4 dense layers' per layer, and the gradients' products.
    assert.ok(
      bare.nodeCount <= plain.nodeCount - 16,
      `${bare.nodeCount} against ${plain.nodeCount}`,
    );
    const steps = new CompiledSteps(vars, { threads: 1 });
    const optionsOf = (c: unknown) =>
      (c as { options: { elideMatMulReshapes?: boolean } }).options.elideMatMulReshapes;
    assert.notEqual(optionsOf(steps.hutchinson), true, 'the AdaHessian compiler is not asked');
    assert.equal(optionsOf(steps.gradient), true, 'the first-order compiler is');
    steps.dispose();
    tf.dispose([...result, x, y]);
    model.dispose();
    assert.equal(tf.memory().numTensors, before);
  });
});
