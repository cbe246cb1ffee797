/**
 * simplify.ts's biasIntoGemm: a dense layer's product and bias (MatMul, Reshape, Add) as one
 * Gemm gives the same outputs bit for bit as the graph without the rewrite, and op by op's to
 * float32 rounding; a product read by something else, or with K above GEMM_BIAS_MAX_K, stays.
 * (The char transformer's whole step graphs, with and without the pass, gave outputs equal bit
 * for bit: bench/speed/step-graph-profile.ts --ab skip=biasIntoGemm, docs/PERFORMANCE.md.)
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { onBackend } from '../../helpers.js';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import { record } from '../../../src/native/step-graph/capture.js';
import { buildStepGraph, type BuiltGraph } from '../../../src/native/step-graph/build.js';
import { GEMM_BIAS_MAX_K } from '../../../src/native/step-graph/simplify.js';
import { runBuiltGraph } from './helpers.js';

const unavailable = onnxRuntimeUnavailableReason();

const count = (g: BuiltGraph, op: string) => g.graph.nodes.filter((n) => n.opType === op).length;

/**
 * Loss and gradients of two dense layers (3-D input, as the char transformer's) with inner size
 * `k`, recorded.
 */
function recordDense(k: number) {
  const x = tf.randomNormal([3, 5, 7], 0, 1, 'float32', 1);
  const dense1 = tf.layers.dense({ units: k, activation: 'tanh', biasInitializer: 'randomNormal' });
  const dense2 = tf.layers.dense({ units: 6, biasInitializer: 'randomNormal' });
  dense1.build([3, 5, 7]);
  dense2.build([3, 5, k]);
  const vars = [...dense1.trainableWeights, ...dense2.trainableWeights].map(
    (w) => w.read() as tf.Variable,
  );
  const f = () =>
    tf.sum(tf.square(dense2.apply(dense1.apply(x) as tf.Tensor) as tf.Tensor)) as tf.Scalar;
  const recorded = recordGradients(f, vars);
  return {
    ...recorded,
    dispose: () => {
      tf.dispose([...recorded.result, x]);
      dense1.weights.forEach((w) => w.dispose());
      dense2.weights.forEach((w) => w.dispose());
    },
  };
}

function recordGradients(f: () => tf.Scalar, vars: tf.Variable[]) {
  const { result, recording, refOf } = record(() => {
    const { value, grads } = tf.variableGrads(f, vars);
    return [value, ...vars.map((v) => grads[v.name]!)];
  });
  const outputs = result.map((t) => ({ ref: refOf(t)!, shape: [...t.shape] }));
  const inputIds = new Set(vars.map((t) => t.dataId as object));
  for (const ext of recording.externals) if (inputIds.has(ext.dataId!)) delete ext.values;
  return { result, recording, outputs };
}

describe('biasIntoGemm (cpu)', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));

  it('gives the same outputs bit for bit as MatMul then Add, and op by op to rounding', () => {
    const before = tf.memory().numTensors;
    for (const k of [64, GEMM_BIAS_MAX_K]) {
      const { result, recording, outputs, dispose } = recordDense(k);
      const gemm = buildStepGraph(recording, outputs);
      const plain = buildStepGraph(recording, outputs, { skipRewrites: ['biasIntoGemm'] });
      // The forward's two dense layers (the gradient has no bias adds).
      assert.equal(count(gemm, 'Gemm'), 2, `k ${k}: Gemm nodes`);
      assert.equal(count(plain, 'Gemm'), 0);
      assert.equal(count(gemm, 'MatMul'), count(plain, 'MatMul') - 2);
      const a = runBuiltGraph(gemm, recording)[0]!;
      const b = runBuiltGraph(plain, recording)[0]!;
      a.forEach((values, i) => assert.deepEqual(values, b[i], `k ${k}: output ${i}`));
      result.forEach((t, i) => {
        const want = t.dataSync();
        const scale = Math.max(...Array.from(want, Math.abs), 1e-6);
        want.forEach((v, j) =>
          assert.ok(Math.abs(a[i]![j]! - v) <= 1e-5 * scale, `k ${k}: output ${i}[${j}]`),
        );
      });
      dispose();
    }
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  });

  it('leaves a product that is read elsewhere, or whose K is above the limit', () => {
    const before = tf.memory().numTensors;
    // K of the second layer above the limit: only the first (K = 7) becomes a Gemm.
    const big = recordDense(2 * GEMM_BIAS_MAX_K);
    assert.equal(count(buildStepGraph(big.recording, big.outputs), 'Gemm'), 1);
    big.dispose();
    // A product that the loss also reads before its bias: it stays a MatMul (a Gemm would
    // need the product a second time).
    const x = tf.randomNormal([15, 7], 0, 1, 'float32', 1);
    const w = tf.tidy(() => tf.variable(tf.randomNormal([7, 4], 0, 1, 'float32', 2)));
    const b = tf.tidy(() => tf.variable(tf.randomNormal([4], 0, 1, 'float32', 3)));
    const read = recordGradients(() => {
      const p = tf.matMul(x, w);
      return tf.add(tf.sum(tf.square(tf.add(p, b))), tf.sum(p)) as tf.Scalar;
    }, [w, b]);
    const g = buildStepGraph(read.recording, read.outputs);
    assert.equal(count(g, 'Gemm'), 0);
    const got = runBuiltGraph(g, read.recording)[0]!;
    read.result.forEach((t, i) => {
      const want = t.dataSync();
      const scale = Math.max(...Array.from(want, Math.abs), 1e-6);
      want.forEach((v, j) => assert.ok(Math.abs(got[i]![j]! - v) <= 1e-5 * scale, `output ${i}`));
    });
    tf.dispose([...read.result, x, w, b]);
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  });
});
