/**
 * Ctrl-C on the default path (cpu with the native kernels, steps replayed as ONNX graphs), in a
 * real process: it stops after the current step with a checkpoint (exit 130), and --resume, in
 * another process that captures its graphs afresh, reaches the weights of an uninterrupted run
 * bit for bit.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint } from '../../src/cli/checkpoint.js';
import { LOCK_FILE } from '../../src/cli/run-lock.js';
import { disableNativeKernels } from '../../src/native/index.js';
import { onnxRuntimeUnavailableReason } from '../../src/native/onnx-runtime.js';
import { cli, savedWeights, spawnCli, tempDir } from './helpers.js';

const unavailable = onnxRuntimeUnavailableReason();

describe('Ctrl-C on the native path', { skip: unavailable || false }, () => {
  it('checkpoints mid-epoch; --resume reaches the uninterrupted weights bit for bit', async () => {
    // 8 epochs of 8 AdaHessian steps; Ctrl-C once the first epoch is reported.
    const args = (out: string) => ['train', '--model', 'mlp', '--train-size', '128',
      '--test-size', '16', '--batch-size', '16', '--native', '--step-graphs', 'all',
      '--optimizer', 'adahessian', '--seed', '5', '--epochs', '8', '--out', out]; // prettier-ignore
    const stoppedDir = tempDir();
    let sent = false;
    const stopped = await spawnCli(args(stoppedDir), {
      direct: true,
      onStart: (child) => {
        child.stderr!.on('data', (d: Buffer) => {
          if (!sent && String(d).includes('epoch 1/8')) {
            sent = true;
            child.kill('SIGINT');
          }
        });
      },
    });
    assert.ok(sent, `never reported epoch 1: ${stopped.err}`);
    assert.equal(stopped.code, 130, stopped.err);
    assert.match(stopped.err, /Stopped at step \d+; checkpoint saved\./);
    const at = loadCheckpoint(stoppedDir).globalStep;
    assert.ok(at >= 8 && at < 64, `stopped at step ${at}`);
    assert.ok(!existsSync(join(stoppedDir, LOCK_FILE)), 'lock left behind');

    disableNativeKernels(); // the resumed run turns them on from its checkpoint
    const resumed = await cli(['train', '--resume', stoppedDir, '--quiet']);
    assert.equal(resumed.code, 0, resumed.err);
    const fullDir = tempDir();
    const full = await cli([...args(fullDir), '--quiet']);
    assert.equal(full.code, 0, full.err);
    const weights = savedWeights;
    assert.ok(weights(stoppedDir).equals(weights(fullDir)), 'resumed weights differ');
  });
});
