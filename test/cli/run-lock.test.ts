/**
 * One run per output directory, with real concurrent processes: a second run on a busy --out
 * is refused and the first finishes untouched; a stale lock (its process is gone) does not
 * block; a directory holding a finished or unfinished run is not overwritten without --force.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint } from '../../src/cli/checkpoint.js';
import {
  LOCK_FILE,
  acquireRunLock,
  currentBootId,
  processStartTime,
} from '../../src/cli/run-lock.js';
import { cli, savedWeights, spawnCli, tempDir, TINY } from './helpers.js';

/** The pid of a process that has exited (and so is not running). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

describe('one run per --out', () => {
  it('a second process on a busy --out is refused; the first finishes as if alone', async () => {
    const out = tempDir();
    const lock = join(out, LOCK_FILE);
    const args = ['train', ...TINY, '--epochs', '8', '--checkpoint-every', '1', '--out', out];
    let second: Awaited<ReturnType<typeof spawnCli>> | undefined;
    let ownerPid = -1;
    const first = await spawnCli(args, {
      direct: true,
      onStart: (child) => {
        ownerPid = child.pid!;
        // Start the second run once the first holds the lock and has checkpointed.
        const poll = setInterval(() => {
          if (!existsSync(join(out, 'checkpoint.json'))) return;
          clearInterval(poll);
          void spawnCli(args, { direct: true }).then((r) => (second = r));
        }, 20);
        child.once('exit', () => clearInterval(poll));
      },
    });
    assert.equal(first.code, 0, first.err);
    assert.ok(second, 'the second run did not start while the first was running');
    assert.equal(second.code, 2, second.err);
    assert.match(
      second.err,
      new RegExp(`^error: --out .* is in use by another run \\(process ${ownerPid}, started `),
    );
    assert.equal(second.err.trim().split('\n').length, 1, 'one line, no stack');
    // The first run's files are whole and its own; nothing was left behind.
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    assert.equal(metrics.finished, true);
    assert.equal(loadCheckpoint(out).globalStep, 32);
    assert.ok(!existsSync(lock), 'lock left behind');
    assert.deepEqual(readdirSync(out).sort(), [
      'checkpoint.json',
      'metrics.csv',
      'metrics.json',
      'model',
    ]);
  });

  it('a lock whose process is gone is taken over, with a note', async () => {
    const out = tempDir();
    const pid = await deadPid();
    writeFileSync(
      join(out, LOCK_FILE),
      JSON.stringify({ pid, host: hostname(), startedAt: '2026-01-01T00:00:00Z', command: 'x' }),
    );
    const run = await cli([
      'train',
      ...TINY.filter((a) => a !== '--quiet'),
      '--epochs',
      '1',
      '--out',
      out,
    ]);
    assert.equal(run.code, 0, run.err);
    assert.match(
      run.err,
      new RegExp(`Removed a stale lock of process ${pid} \\(no longer running\\)`),
    );
    assert.ok(!existsSync(join(out, LOCK_FILE)));
  });

  it('acquireRunLock refuses a live owner and releases only its own lock', () => {
    const out = tempDir();
    const held = acquireRunLock(out, '--out');
    assert.throws(() => acquireRunLock(out, '--out'), /is in use by another run \(process \d+/);
    held.release();
    assert.ok(!existsSync(join(out, LOCK_FILE)));
    const again = acquireRunLock(out, '--out');
    held.release(); // a stale handle does not remove the new owner's lock
    assert.ok(existsSync(join(out, LOCK_FILE)));
    again.release();
  });

  it(
    'a live pid is the owner only if its start time and boot id match the lock (pid reuse after kill -9)',
    { skip: process.platform !== 'linux' && 'needs /proc' },
    async () => {
      // A live process that did not take the lock stands for an unrelated one that got its pid.
      const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
      try {
        await new Promise((r) => other.once('spawn', r));
        const pid = other.pid!;
        const started = processStartTime(pid);
        assert.match(started ?? '', /^\d+$/, 'field 22 of /proc/<pid>/stat');
        assert.notEqual(started, processStartTime(process.pid));
        const lockWith = (fields: object) => {
          const out = tempDir();
          writeFileSync(
            join(out, LOCK_FILE),
            JSON.stringify({ pid, host: hostname(), startedAt: 'then', command: 'x', ...fields }),
          );
          return out;
        };
        const acquire = (out: string) => {
          const notes: string[] = [];
          acquireRunLock(out, '--out', (m) => notes.push(m)).release();
          return notes.join('\n');
        };
        const bootId = currentBootId();
        // The same process: refused, naming the pid and what to do.
        const busy = lockWith({ bootId, processStart: started });
        assert.throws(
          () => acquire(busy),
          new RegExp(`in use by another run \\(process ${pid}, started then\\); wait for it`),
        );
        // Same pid, another start time: the owner was killed and its pid reused.
        assert.match(
          acquire(lockWith({ bootId, processStart: String(Number(started) - 1) })),
          new RegExp(`stale lock of process ${pid} \\(no longer running: pid ${pid} now belongs`),
        );
        // Another boot: every process of the old one is gone.
        assert.match(
          acquire(lockWith({ bootId: 'another-boot', processStart: started })),
          /\(no longer running: the machine has restarted since\)/,
        );
        // A lock written before start times were recorded: the live pid still counts.
        assert.throws(() => acquire(lockWith({})), /in use by another run/);
      } finally {
        other.kill();
      }
    },
  );

  it('a finished run is not overwritten without --force; an unfinished one points to --resume', async () => {
    const out = tempDir();
    assert.equal((await cli(['train', ...TINY, '--epochs', '1', '--out', out])).code, 0);
    const weights = savedWeights(out);
    const refused = await cli(['train', ...TINY, '--epochs', '1', '--seed', '2', '--out', out]);
    assert.equal(refused.code, 2);
    assert.match(
      refused.err,
      /--out .* holds a finished run \(checkpoint\.json, metrics\.json, metrics\.csv, model\); pass --force/,
    );
    assert.ok(savedWeights(out).equals(weights), 'overwritten');
    const forced = await cli([
      'train',
      ...TINY,
      '--epochs',
      '1',
      '--seed',
      '2',
      '--out',
      out,
      '--force',
    ]);
    assert.equal(forced.code, 0, forced.err);
    assert.ok(!savedWeights(out).equals(weights));

    const unfinished = tempDir();
    writeFileSync(join(unfinished, 'checkpoint.json'), '{}');
    const refusedUnfinished = await cli(['train', ...TINY, '--out', unfinished]);
    assert.equal(refusedUnfinished.code, 2);
    assert.match(
      refusedUnfinished.err,
      /holds an unfinished run \(checkpoint\.json\); continue it with --resume/,
    );
  });
});
