/**
 * `train --json` with step graphs (the default with the native kernels) reports the training
 * accuracy counted on the replayed steps (src/native/step-graph/escape.ts), equal to op by op's.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { onnxRuntimeUnavailableReason } from '../../src/native/onnx-runtime.js';
import { stepGraphsStatus } from '../../src/native/index.js';
import { cli, TINY } from './helpers.js';

const unavailable = onnxRuntimeUnavailableReason();

describe('train --json with step graphs', { skip: unavailable || false }, () => {
  it('trainAccuracy is counted on replayed steps, equal to --step-graphs off', async () => {
    // 8 AdaHessian steps: captured twice, then replayed.
    const args = ['train', ...TINY, '--native', '--train-size', '128', '--optimizer', 'adahessian',
      '--epochs', '1', '--seed', '3', '--json']; // prettier-ignore
    const replayed = await cli([...args, '--step-graphs', 'all']);
    assert.equal(replayed.code, 0, replayed.err);
    const status = stepGraphsStatus();
    assert.ok(status.replays >= 6, `replays ${status.replays}: ${status.lastReason}`);
    const opByOp = await cli([...args, '--step-graphs', 'off']);
    assert.equal(opByOp.code, 0, opByOp.err);
    const accuracy = (out: string) =>
      (JSON.parse(out) as { metrics: { trainAccuracy: number | null }[] }).metrics.map(
        (m) => m.trainAccuracy,
      );
    const got = accuracy(replayed.out);
    assert.equal(typeof got[0], 'number', replayed.out);
    assert.deepEqual(got, accuracy(opByOp.out));
  });
});
