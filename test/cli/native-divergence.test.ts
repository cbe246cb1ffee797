/**
 * A diverging run on the default path (cpu with the native kernels, steps replayed as ONNX
 * graphs), whose loss and update come out of a replayed graph rather than TF.js's kernels: it
 * stops with one line (exit 1), keeps its last finite checkpoint, claims no result, and leaks no
 * tensor.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadCheckpoint } from '../../src/cli/checkpoint.js';
import { onnxRuntimeUnavailableReason } from '../../src/native/onnx-runtime.js';
import { cli, tempDir, TINY } from './helpers.js';

const unavailable = onnxRuntimeUnavailableReason();

describe('a diverging run on the native path', { skip: unavailable || false }, () => {
  for (const optimizer of ['sgd', 'adahessian']) {
    it(`${optimizer}: one line, the last finite checkpoint kept, nothing claimed, no leak`, async () => {
      const args = (out: string) => ['train', ...TINY, '--native', '--step-graphs', 'all',
        '--train-size', '256', '--optimizer', optimizer, '--lr', '1e12', '--epochs', '1',
        '--checkpoint-every', '1', '--out', out]; // prettier-ignore
      await cli(args(tempDir())); // warm-up: kernels, captured graphs
      const tensors = tf.memory().numTensors;
      const out = tempDir();
      const run = await cli(args(out));
      assert.equal(tf.memory().numTensors, tensors, 'tensors leaked');
      assert.equal(run.code, 1, run.err);
      assert.equal(run.err.trim().split('\n').length, 1, run.err);
      const step = Number(/^error: Training diverged at epoch 1, step (\d+): /.exec(run.err)?.[1]);
      assert.ok(step >= 2, `diverged at step ${step}: ${run.err}`); // some steps were finite
      assert.equal(loadCheckpoint(out).globalStep, step - 1); // loads: finite, whole
      assert.ok(!existsSync(join(out, 'metrics.json')), 'metrics claim a result');
      assert.ok(!existsSync(join(out, 'model')), 'a diverged model was saved');
    });
  }
});
