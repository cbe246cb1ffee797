/**
 * The second-order sweep leaves out edges whose gradient is identically zero (Step's input,
 * the pooled input and output of MaxPoolGrad / AvgPoolGrad): fewer nodes are swept and the
 * products are exactly those of the full sweep.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { backprop, filterTape } from '../../src/autodiff/backprop.js';
import { privateEngine, type TapeNode } from '../../src/autodiff/engine.js';
import { installSecondOrderSupport } from '../../src/autodiff/install.js';
import { onBackend, TEST_BACKENDS } from '../helpers.js';

for (const backend of TEST_BACKENDS) {
  describe(`zero-gradient edges on ${backend}`, () => {
    before(async () => {
      await onBackend(backend);
      installSecondOrderSupport();
    });

    it('the pruned sweep gives exactly the full sweep, without the mask edges', () => {
      const before = tf.memory().numTensors;
      const filter = tf.tidy(() =>
        tf.variable(tf.randomNormal([3, 3, 2, 4], 0, 0.5, 'float32', 1)),
      );
      const dense = tf.tidy(() => tf.variable(tf.randomNormal([16, 3], 0, 0.5, 'float32', 2)));
      const x = tf.randomNormal([2, 8, 8, 2], 0, 1, 'float32', 3) as tf.Tensor4D;
      const vars = [filter, dense];
      const probes = vars.map((v, i) => tf.randomNormal(v.shape, 0, 1, 'float32', 10 + i));
      const loss = () => {
        const h = tf.relu(tf.conv2d(x, filter as unknown as tf.Tensor4D, 1, 'same'));
        const p = tf.avgPool(tf.maxPool(h, 2, 2, 'valid'), 2, 2, 'valid');
        return tf.sum(tf.square(tf.relu(tf.matMul(tf.reshape(p, [2, -1]), dense)))) as tf.Scalar;
      };
      const engine = privateEngine();
      let tape: TapeNode[] | null = null;
      const [full, pruned] = tf.tidy(() => {
        engine.startTape();
        tape = engine.state.activeTape;
        const { grads } = engine.gradients(loss, vars, undefined, true);
        const dot = tf.addN(grads.map((g, i) => tf.sum(tf.mul(g!, probes[i]!))));
        engine.endTape();
        const all = filterTape(tape!, vars, dot);
        const skipped = filterTape(tape!, vars, dot, { skipZeroGradients: true });
        const kinds = (nodes: TapeNode[]) => nodes.map((n) => n.kernelName);
        // Relu's mask: Step, or on cpu our ReluGrad, whose x edge the pruned sweep leaves out.
        const mask = backend === 'cpu' ? 'ReluGrad' : 'Step';
        assert.ok(kinds(all).includes(mask), `the full sweep passes through ${mask}`);
        if (mask === 'Step') assert.ok(!kinds(skipped).includes('Step'), 'the pruned one not');
        assert.ok(skipped.length < all.length);
        for (const node of skipped) {
          if (['MaxPoolGrad', 'AvgPoolGrad', 'ReluGrad'].includes(node.kernelName)) {
            assert.deepEqual(Object.keys(node.inputs), ['dy'], node.kernelName);
          }
        }
        return [backprop(all, vars, dot), backprop(skipped, vars, dot)].map((hs) =>
          hs.map((h) => tf.keep(h!)),
        );
      });
      for (const node of tape! as TapeNode[]) for (const t of node.saved ?? []) t.dispose();
      full!.forEach((h, i) => {
        assert.deepEqual(pruned![i]!.dataSync(), h.dataSync(), `H v for variable ${i}`);
      });
      tf.dispose([...full!, ...pruned!, filter, dense, x, ...probes]);
      assert.equal(tf.memory().numTensors, before);
    });
  });
}
