/**
 * What the second-order sweep holds: each node's temporaries and output gradients go as soon as
 * the node is done, and the last sweep over a tape frees the tape's tensors as it passes them.
 * Checked loosely, through tensor counts and the engine's peak bytes of one computation (no
 * RSS threshold); the products themselves are checked against exact Hessians elsewhere.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { backprop, filterTape } from '../../src/autodiff/backprop.js';
import { privateEngine, type TapeNode } from '../../src/autodiff/engine.js';
import { gradAndHvp, releaseAsSwept } from '../../src/autodiff/hvp.js';
import { installSecondOrderSupport } from '../../src/autodiff/install.js';
import { maxAbsDiff, onBackend } from '../helpers.js';

const DEPTH = 30;

/** A deep chain of smooth layers on a [64, 64] activation: the tape is long and wide. */
function chainLoss(w: tf.Variable, x: tf.Tensor): () => tf.Scalar {
  return () => {
    let h = x;
    for (let i = 0; i < DEPTH; i++) h = tf.tanh(tf.mul(h, w));
    return tf.mean(tf.square(h)) as tf.Scalar;
  };
}

describe('second-order sweep memory (cpu)', () => {
  before(async () => {
    await onBackend('cpu');
    installSecondOrderSupport();
  });

  it('a sweep holds a bounded number of tensors, not one per node it has passed', () => {
    const w = tf.variable(tf.fill([64], 0.9));
    const x = tf.randomNormal([64, 64], 0, 1, 'float32', 1);
    const engine = privateEngine();
    const counts: number[] = [];
    tf.tidy(() => {
      engine.startTape();
      const tape = engine.state.activeTape as TapeNode[];
      const y = chainLoss(w, x)();
      engine.endTape();
      const filtered = filterTape(tape, [w], y);
      assert.ok(filtered.length >= 2 * DEPTH);
      backprop(filtered, [w], y, { afterNode: () => counts.push(tf.memory().numTensors) });
      engine.state.activeTape = null;
      return [];
    });
    // The gradient of w accumulates (one tensor); the rest comes and goes per node.
    const growth = Math.max(...counts) - counts[0]!;
    assert.ok(growth <= 4, `the sweep grew by ${growth} tensors over ${counts.length} nodes`);
    tf.dispose([w, x]);
  });

  it('a last sweep frees the tape as it goes, with the same products', () => {
    const w = tf.variable(tf.fill([64], 0.9));
    const x = tf.randomNormal([64, 64], 0, 1, 'float32', 2);
    const v = tf.randomNormal([64], 0, 1, 'float32', 3);
    const engine = privateEngine();
    const start = tf.memory().numTensors;
    const sweep = (release: boolean) =>
      tf.tidy(() => {
        engine.startTape();
        const tape = engine.state.activeTape as TapeNode[];
        const { value, grads } = engine.gradients(chainLoss(w, x), [w], undefined, true);
        const dot = tf.sum(tf.mul(grads[0]!, v));
        engine.endTape();
        const swept = filterTape(tape, [w], dot, { skipZeroGradients: true });
        const free = release ? releaseAsSwept(tape, swept, [value, grads[0]!, dot]) : undefined;
        const bytes: number[] = [tf.memory().numBytes];
        const [hvp] = tf.tidy(() =>
          backprop(swept, [w], dot, {
            afterNode: (node) => {
              free?.(node);
              bytes.push(tf.memory().numBytes);
            },
          }),
        );
        for (const node of tape) for (const t of node.saved ?? []) t.dispose();
        engine.state.activeTape = null;
        return { hvp: hvp!, first: bytes[0]!, last: bytes.at(-1)! };
      });
    const kept = sweep(false);
    const freed = sweep(true);
    assert.equal(maxAbsDiff(kept.hvp, freed.hvp), 0);
    // Without release the tape stays whole to the end; with it, little is left.
    assert.ok(kept.last >= kept.first, `${kept.last} < ${kept.first} bytes without release`);
    assert.ok(freed.last < 0.25 * freed.first, `${freed.last} of ${freed.first} bytes left`);
    tf.dispose([kept.hvp, freed.hvp]);
    assert.equal(tf.memory().numTensors, start);
    tf.dispose([w, x, v]);
  });

  it('tensors the loss function keeps with tf.keep survive the sweep', () => {
    const w = tf.variable(tf.fill([64], 0.9));
    const x = tf.randomNormal([64, 64], 0, 1, 'float32', 4);
    let hidden: tf.Tensor | null = null;
    const lossFn = () => {
      const h = tf.keep(tf.tanh(tf.mul(x, w)));
      hidden = h;
      return tf.mean(tf.square(tf.tanh(tf.mul(h, w)))) as tf.Scalar;
    };
    const ones = tf.onesLike(w);
    const r = gradAndHvp(lossFn, [w], [ones]);
    const expected = tf.tidy(() => tf.tanh(tf.mul(x, w)));
    assert.equal(maxAbsDiff(hidden!, expected), 0);
    tf.dispose([r.loss, ...r.grads, ...r.hvp, hidden!, expected, ones, w, x]);
  });
});
