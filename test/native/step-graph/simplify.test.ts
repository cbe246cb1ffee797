/**
 * The step graphs' bit-for-bit rewrites (src/native/step-graph/simplify.ts): a recorded layer
 * norm's gradient and Hessian-vector sweep (tf.layers tiles the moments to full size) built
 * with and without sinkBroadcasts give identical outputs in ONNX Runtime, and with it no
 * element-wise node computes a broadcast of a smaller tensor at full size; reshapedSmall
 * carries a broadcast through reshapes that split or merge axes, and refuses mixed blocks.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { onBackend } from '../../helpers.js';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import { record } from '../../../src/native/step-graph/capture.js';
import { buildStepGraph, type BuiltGraph } from '../../../src/native/step-graph/build.js';
import { reshapedSmall } from '../../../src/native/step-graph/simplify.js';
import { runBuiltGraph } from './helpers.js';
import { gradAndHvpMany } from '../../../src/autodiff/hvp.js';

const unavailable = onnxRuntimeUnavailableReason();

describe('reshapedSmall', () => {
  it('carries broadcast axes through reshapes that add, drop, split or merge axes', () => {
    // Size-1 axes added or dropped.
    assert.deepEqual(reshapedSmall([64, 64, 1], [64, 64, 64], [1, 64, 64, 64]), [1, 64, 64, 1]);
    assert.deepEqual(reshapedSmall([1, 64], [8, 64], [8, 1, 64]), [1, 1, 64]);
    // A whole axis split in two, a broadcast one kept: [4096, 1, 1] of [4096, 64, 1].
    assert.deepEqual(reshapedSmall([4096, 1, 1], [4096, 64, 1], [64, 64, 64]), [64, 64, 1]);
    // Broadcast axes merged: [1, 1, 64] of [8, 4, 64] as [32, 64].
    assert.deepEqual(reshapedSmall([1, 1, 64], [8, 4, 64], [32, 64]), [1, 64]);
    // A block mixing a broadcast and a whole axis cannot stay broadcast.
    assert.equal(reshapedSmall([8, 1], [8, 4], [32]), null);
    assert.equal(reshapedSmall([1, 4], [8, 4], [4, 8]), null);
  });
});

describe('sinkBroadcasts (cpu)', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));

  it('gives the same outputs bit for bit, with no full-size element-wise work on broadcasts', () => {
    const before = tf.memory().numTensors;
    const ln = tf.layers.layerNormalization({ axis: -1 });
    const x = tf.randomNormal([15, 6], 0, 1, 'float32', 1);
    ln.build([3, 5, 8]);
    // A variable before the layer norm, so that the sweep goes through its moments.
    const w0 = tf.tidy(() => tf.variable(tf.randomNormal([6, 8], 0, 1, 'float32', 3)));
    const vars = [w0, ...ln.trainableWeights.map((w) => w.read() as tf.Variable)];
    const w = tf.randomNormal([8, 4], 0, 1, 'float32', 2);
    const probes = [vars.map((v, i) => tf.randomNormal(v.shape, 0, 1, 'float32', 10 + i))];
    const f = () => {
      const h = tf.reshape(tf.matMul(x, w0), [3, 5, 8]);
      const y = tf.reshape(ln.apply(h) as tf.Tensor, [15, 8]);
      return tf.sum(tf.square(tf.matMul(y, w))) as tf.Scalar;
    };
    const { result, recording, refOf } = record(() => {
      const r = gradAndHvpMany(f, vars, probes, { checkFinite: false });
      return [r.loss, ...r.grads, ...r.hvps[0]!];
    });
    const outputs = result.map((t) => ({ ref: refOf(t)!, shape: [...t.shape] }));
    const inputIds = new Set([...vars, ...probes.flat()].map((t) => t.dataId as object));
    for (const ext of recording.externals) if (inputIds.has(ext.dataId!)) delete ext.values;
    const sunk = buildStepGraph(recording, outputs);
    const plain = buildStepGraph(recording, outputs, { skipRewrites: ['sinkBroadcasts'] });

    const a = run(sunk, recording);
    const b = run(plain, recording);
    a.forEach((values, k) => assert.deepEqual(values, b[k], `output ${k}`));
    // And both are the op-by-op values to float32 rounding.
    result.forEach((t, k) => {
      const want = t.dataSync();
      const scale = Math.max(...Array.from(want, Math.abs), 1e-6);
      want.forEach((v, i) =>
        assert.ok(Math.abs(a[k]![i]! - v) <= 1e-4 * scale, `output ${k}[${i}]`),
      );
    });
    // The moments' rsqrt chain now runs on [3, 5, 1]-sized tensors, not [1, 3, 5, 8].
    const fullSizeOnBroadcasts = (g: BuiltGraph) =>
      g.graph.nodes.filter(
        (n) =>
          ['Sqrt', 'Reciprocal'].includes(n.opType) &&
          n.inputs.every((i) => !i.startsWith('e')) &&
          !n.outputs[0]!.includes('_b'),
      ).length;
    assert.ok(fullSizeOnBroadcasts(plain) > 0, 'the plain graph has full-size rsqrt nodes');
    assert.equal(fullSizeOnBroadcasts(sunk), 0, 'the sunk graph has none');
    assert.ok(sunk.nodeCount < plain.nodeCount, `${sunk.nodeCount} < ${plain.nodeCount} nodes`);

    tf.dispose([...result, x, w, w0, ...probes.flat()]);
    ln.weights.forEach((weight) => weight.dispose());
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  });
});

/** The graph's outputs in ONNX Runtime, on the recording's own inputs. */
function run(built: BuiltGraph, recording: ReturnType<typeof record>['recording']): Float32Array[] {
  return runBuiltGraph(built, recording)[0]!;
}
