/**
 * Kernels whose gradient reads only the shape of a saved input keep a shape record on the tape
 * instead of the tensor (src/autodiff/shape-only-saves.ts); the products through them are
 * unchanged, and a gradient registered by someone else keeps its real tensors.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '../../src/index.js';
import { privateEngine, type TapeNode } from '../../src/autodiff/engine.js';
import { compareHvpWithFiniteDifferences } from '../../src/autodiff/finite-difference.js';
import { onBackend, TEST_BACKENDS } from '../helpers.js';

/** Runs f on a recording tape; returns each recorded node's kernel and saved entries. */
function record(f: () => tf.Tensor): { kernelName: string; saved: unknown[] }[] {
  const engine = privateEngine();
  return tf.tidy(() => {
    engine.startTape();
    const tape = engine.state.activeTape as TapeNode[];
    f();
    engine.endTape();
    const nodes = tape.map((n) => ({ kernelName: n.kernelName, saved: [...(n.saved ?? [])] }));
    for (const node of tape) for (const t of node.saved ?? []) t.dispose();
    engine.state.activeTape = null;
    return nodes as never;
  });
}

for (const backend of TEST_BACKENDS) {
  describe(`shape-only saves on ${backend}`, () => {
    before(() => onBackend(backend));

    it('Add, Sub, Reshape, Sum, Mean and Tile keep shapes; Multiply keeps its tensors', () => {
      const x = tf.randomNormal([4, 3], 0, 1, 'float32', 1);
      const b = tf.randomNormal([3], 0, 1, 'float32', 2);
      const start = tf.memory().numTensors;
      const nodes = record(() => {
        const h = tf.sub(tf.add(x, b), tf.mean(x, 0));
        const t = tf.tile(tf.reshape(h, [2, 6]), [2, 1]);
        return tf.sum(tf.mul(t, t));
      });
      const byKernel = new Map(nodes.map((n) => [n.kernelName, n.saved]));
      for (const name of ['Add', 'Sub', 'Reshape', 'Sum', 'Mean', 'Tile']) {
        const saved = byKernel.get(name);
        assert.ok(saved != null && saved.length > 0, `${name} recorded with saves`);
        for (const s of saved) {
          assert.ok(!(s instanceof tf.Tensor), `${name} keeps a tensor`);
          assert.ok(Array.isArray((s as tf.Tensor).shape));
        }
      }
      assert.ok(byKernel.get('Multiply')!.every((s) => s instanceof tf.Tensor));
      assert.equal(tf.memory().numTensors, start);
      tf.dispose([x, b]);
    });

    it('products through them agree with central differences', () => {
      const w = tf.variable(tf.randomNormal([3, 4], 0, 0.5, 'float32', 3));
      const x = tf.randomNormal([5, 3], 0, 1, 'float32', 4);
      const lossFn = () => {
        const h = tf.matMul(x, w);
        const centred = tf.sub(h, tf.mean(h, 0));
        const t = tf.tile(tf.reshape(tf.add(centred, tf.sum(w, 0)), [10, 2]), [1, 2]);
        return tf.mean(tf.square(tf.tanh(t))) as tf.Scalar;
      };
      const result = compareHvpWithFiniteDifferences(lossFn, [w], { seed: 5 });
      assert.ok(result.relError < 1e-2, `relative error ${result.relError}`);
      w.dispose();
      x.dispose();
    });

    it('a gradient registered by someone else keeps its saved tensors', () => {
      const stock = tf.getGradient('Reshape')!;
      tf.registerGradient({ ...stock, gradFunc: (dy, saved) => stock.gradFunc(dy, saved, {}) });
      try {
        const x = tf.randomNormal([2, 3], 0, 1, 'float32', 6);
        const nodes = record(() => tf.reshape(x, [3, 2]));
        const reshape = nodes.find((n) => n.kernelName === 'Reshape')!;
        assert.ok(reshape.saved[0] instanceof tf.Tensor);
        x.dispose();
      } finally {
        tf.registerGradient(stock);
      }
    });
  });
}
