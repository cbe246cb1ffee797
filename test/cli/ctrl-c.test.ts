/**
 * Ctrl-C typed into a real terminal (a pseudo-terminal driven by python3's pty module): the
 * first stops training after the current step, saves a checkpoint and exits with 130; a
 * second one exits at once, leaving no broken file and no lock behind.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint } from '../../src/cli/checkpoint.js';
import { LOCK_FILE } from '../../src/cli/run-lock.js';
import { ROOT, tempDir } from './helpers.js';

interface PtyRun {
  code: number | null;
  signal: number | null;
  output: string;
  timedOut: boolean;
  untriggered: string[];
}

/** `adahessian <args>` in a terminal; Ctrl-C is typed once each trigger has been printed. */
function inTerminal(args: string[], triggers: string[]): PtyRun {
  const script = join(ROOT, 'test', 'cli', 'fixtures', 'pty-ctrl-c.py');
  const run = spawnSync(
    'python3',
    [
      script,
      '120',
      ...triggers,
      '--',
      process.execPath,
      join(ROOT, 'bin', 'adahessian.js'),
      ...args,
    ],
    { cwd: ROOT, env: { ...process.env, NO_COLOR: '1', CI: '' }, encoding: 'utf8' },
  );
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout) as PtyRun;
}

const MLP = ['--model', 'mlp', '--train-size', '64', '--test-size', '32', '--batch-size', '16'];

describe('Ctrl-C in a terminal', () => {
  it('stops after the current step, saves a checkpoint, exits 130', () => {
    const out = tempDir();
    // 30 epochs of 4 steps: several seconds; Ctrl-C once the first epoch is reported.
    const run = inTerminal(
      ['train', ...MLP, '--backend', 'cpu', '--epochs', '30', '--out', out],
      ['epoch 1/30  train loss'],
    );
    assert.equal(run.timedOut, false, run.output);
    assert.deepEqual(run.untriggered, [], run.output);
    assert.equal(run.code, 130, run.output);
    assert.match(run.output, /Stopping after this step/);
    assert.match(
      run.output,
      /Stopped at step \d+; checkpoint saved\. Continue with: adahessian train --resume/,
    );
    const saved = loadCheckpoint(out);
    assert.ok(saved.globalStep >= 4 && saved.globalStep < 120, `stopped at ${saved.globalStep}`);
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    assert.equal(metrics.finished, false);
    assert.ok(!existsSync(join(out, 'model')), 'an interrupted run wrote a final model');
    assert.ok(!existsSync(join(out, LOCK_FILE)), 'the lock was left behind');
  });

  it('a second Ctrl-C exits at once: no lock left, the checkpoint whole', () => {
    const out = tempDir();
    // Two presses 20 ms apart, right after epoch 1 is reported: both land while the next step
    // runs (the SIGINT handler can only run between steps), so the second one decides.
    const run = inTerminal(
      [
        'train',
        '--model',
        'mlp',
        '--train-size',
        '512',
        '--test-size',
        '16',
        '--batch-size',
        '256',
        '--backend',
        'cpu',
        '--epochs',
        '30',
        '--out',
        out,
      ],
      ['epoch 1/30  train loss', '+0.02'],
    );
    assert.equal(run.timedOut, false, run.output);
    assert.equal(run.code, 130, run.output);
    assert.match(run.output, /Stopped at once \(second Ctrl-C\)/);
    assert.doesNotMatch(run.output, /Stopped at step/);
    assert.ok(!existsSync(join(out, LOCK_FILE)), 'the lock was left behind');
    const saved = loadCheckpoint(out); // epoch 1's checkpoint, whole
    assert.ok(saved.globalStep >= 2);
  });
});
