/**
 * The stub's cheaper per-call checks (src/native/step-graph/stub-kernels.ts): sameAttrs agrees
 * with comparing JSON strings on plain and non-plain attributes; interceptKernels runs every
 * kernel of the backend through the wrapper, leaves the registry as it was after undo, and falls
 * back to re-registering when a lookup is already diverted; sameShape.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  interceptKernels,
  sameAttrs,
  sameShape,
} from '../../../src/native/step-graph/stub-kernels.js';
import { onBackend } from '../../helpers.js';

describe('stub kernel checks', () => {
  before(async () => onBackend('cpu'));

  it('sameAttrs says what comparing JSON strings says', () => {
    const recorded: object[] = [
      {},
      { transposeA: false, transposeB: true, activation: 'linear', leakyreluAlpha: null },
      { shape: [64, 64, 96] },
      { axis: [1], keepDims: true },
      { dtype: 'float32' },
      { perm: [0, 2, 1, 3] },
      { x: 0 },
      { nested: { a: [1, 2] } },
    ];
    const live: (object | undefined)[] = [
      undefined,
      {},
      { transposeA: false, transposeB: true, activation: 'linear', leakyreluAlpha: null },
      { transposeB: true, transposeA: false, activation: 'linear', leakyreluAlpha: null },
      { transposeA: false, transposeB: false, activation: 'linear', leakyreluAlpha: null },
      { shape: [64, 64, 96] },
      { shape: [64, 96, 64] },
      { shape: [64, 64] },
      { shape: new Int32Array([64, 64, 96]) },
      { axis: [1], keepDims: true },
      { axis: 1, keepDims: true },
      { axis: [1], keepDims: true, extra: undefined },
      { axis: [1], keepDims: 'true' },
      { dtype: 'float32' },
      { dtype: 'int32' },
      { perm: [0, 2, 1, 3] },
      { x: -0 },
      { x: NaN },
      { x: null },
      { nested: { a: [1, 2] } },
      { nested: { a: [1, 3] } },
    ];
    let equalPairs = 0;
    for (const r of recorded) {
      const json = JSON.stringify(r);
      const parsed = JSON.parse(json) as unknown;
      for (const l of live) {
        const want = JSON.stringify(l ?? {}) === json;
        if (want) equalPairs++;
        assert.equal(sameAttrs(l, json, parsed), want, `${JSON.stringify(l)} against ${json}`);
      }
    }
    assert.ok(equalPairs >= 10);
  });

  it('sameShape', () => {
    assert.equal(sameShape([2, 3], [2, 3]), true);
    assert.equal(sameShape([2, 3], [3, 2]), false);
    assert.equal(sameShape([2, 3], [2, 3, 1]), false);
    assert.equal(sameShape([], []), true);
  });

  it('interceptKernels wraps every kernel of the backend until undone', () => {
    const seen: string[] = [];
    const before = tf.getKernel('Add', 'cpu');
    const undo = interceptKernels('cpu', (config) => (args) => {
      seen.push(config.kernelName);
      return config.kernelFunc(args);
    });
    let sum: number[];
    try {
      // The registry's entries are not touched (only its lookup is diverted).
      const registered = tf.getKernelsForBackend('cpu').find((c) => c.kernelName === 'Add');
      assert.equal(registered, before);
      sum = tf.tidy(() => Array.from(tf.relu(tf.add(tf.tensor([1, -5]), 1)).dataSync()));
    } finally {
      undo();
    }
    assert.deepEqual(sum, [2, 0]);
    assert.ok(seen.includes('Add') && seen.includes('Relu'), `seen: ${seen.join(', ')}`);
    assert.equal(tf.getKernel('Add', 'cpu'), before);
    const count = seen.length;
    tf.tidy(() => tf.add(tf.tensor([1]), 1));
    assert.equal(seen.length, count, 'nothing wrapped after undo');
  });

  it('nested interception falls back to re-registering, and both undo cleanly', () => {
    const outer: string[] = [];
    const inner: string[] = [];
    const before = tf.getKernel('Multiply', 'cpu');
    const undoOuter = interceptKernels('cpu', (config) => (args) => {
      outer.push(config.kernelName);
      return config.kernelFunc(args);
    });
    const undoInner = interceptKernels('cpu', (config) => (args) => {
      inner.push(config.kernelName);
      return config.kernelFunc(args);
    });
    tf.tidy(() => tf.mul(tf.tensor([2]), 3).dataSync());
    undoInner();
    undoOuter();
    assert.ok(outer.includes('Multiply') && inner.includes('Multiply'));
    assert.equal(tf.getKernel('Multiply', 'cpu'), before);
  });
});
