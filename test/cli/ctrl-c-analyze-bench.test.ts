/**
 * Ctrl-C (SIGINT) on analyze and bench, whose work is long stretches of computation: they stop
 * at once (exit 130, one line), analyze leaves no lock and no partial file behind. Node runs the
 * handler only when its event loop turns, which these commands now let it do between batches
 * and timed windows (src/cli/signals.ts); before, Ctrl-C waited for the end of the run.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { LOCK_FILE } from '../../src/cli/run-lock.js';
import { cli, spawnCli, tempDir, TINY, type Spawned } from './helpers.js';

/**
 * Runs `args`, sends SIGINT once `ready(stderr so far)` holds (and a moment more), and times the
 * exit. Ready must mean the command has started: a SIGINT that comes while the CLI is still
 * loading finds Node's default handler, which kills the process with no exit code.
 */
async function interrupt(
  args: string[],
  ready: (err: string) => boolean,
): Promise<Spawned & { secondsToExit: number }> {
  let sentAt = 0;
  let exitedAt = 0;
  const run = await spawnCli(args, {
    direct: true,
    onStart: (child) => {
      let err = '';
      child.stderr!.on('data', (d) => (err += d));
      const poll = setInterval(() => {
        if (!ready(err)) return;
        clearInterval(poll);
        setTimeout(() => {
          sentAt = Date.now();
          child.kill('SIGINT');
          // A command that ignores Ctrl-C would run for minutes: give up on it.
          setTimeout(() => child.kill('SIGKILL'), 20_000).unref();
        }, 1500);
      }, 50);
      child.once('exit', () => {
        exitedAt = Date.now();
        clearInterval(poll);
      });
    },
  });
  assert.ok(sentAt > 0, `finished before Ctrl-C: ${run.err}`);
  return { ...run, secondsToExit: (exitedAt - sentAt) / 1000 };
}

describe('Ctrl-C on analyze and bench', () => {
  it('analyze stops at once (130, one line); no lock or partial file is left', async () => {
    const run = tempDir();
    const trained = await cli(['train', ...TINY, '--epochs', '1', '--out', run]);
    assert.equal(trained.code, 0, trained.err);
    const out = tempDir();
    // Many density runs: minutes of Hessian-vector products.
    const args = ['analyze', run, '--backend', 'cpu', '--batch-size', '32', '--top-n', '1',
      '--eigen-iters', '4', '--trace-iters', '2', '--density-runs', '1000', '--quiet',
      '--out', out]; // prettier-ignore
    const started = Date.now();
    // (The lock is taken once the model is loaded; the time bound only ends a run that never takes it.)
    const stopped = await interrupt(
      args,
      () => existsSync(join(out, LOCK_FILE)) || Date.now() - started > 15_000,
    );
    assert.equal(stopped.code, 130, stopped.err);
    assert.ok(stopped.secondsToExit < 10, `exited ${stopped.secondsToExit} s after Ctrl-C`);
    assert.equal(stopped.err.trim(), 'Stopped (Ctrl-C).');
    assert.deepEqual(readdirSync(out), []);
  });

  it('bench stops at once (130, one line)', async () => {
    // Not --quiet: its first line on stderr says it has started (a fixed wait raced the CLI's
    // start-up on a loaded machine: killed by the SIGINT, no exit code).
    const args = ['bench', '--model', 'mlp', '--backend', 'cpu', '--optimizers', 'sgd',
      '--batch-size', '16', '--steps', '2', '--rounds', '100000']; // prettier-ignore
    const stopped = await interrupt(args, (err) => err.startsWith('bench: '));
    assert.equal(stopped.code, 130, stopped.err);
    assert.ok(stopped.secondsToExit < 10, `exited ${stopped.secondsToExit} s after Ctrl-C`);
    // The start line, then one line.
    const [first, ...rest] = stopped.err.split('\n').filter((l) => l.trim() !== '');
    assert.match(first!, /^bench: 1 configurations, 100000 rounds/);
    assert.deepEqual(rest, ['Stopped (Ctrl-C).'], stopped.err);
  });
});
