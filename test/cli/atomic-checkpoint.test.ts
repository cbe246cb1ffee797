/**
 * Checkpoints are written atomically: a reader never sees a partial file, whether the writer
 * fails between writing and renaming or is killed at any moment. A training process killed
 * mid-run leaves a checkpoint from which --resume reaches the same weights as a run that was
 * never interrupted.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  isTempFileName,
  removeStaleTempFiles,
  writeFileAtomic,
} from '../../src/cli/atomic-file.js';
import { loadCheckpoint } from '../../src/cli/checkpoint.js';
import { memoryIo } from '../../src/cli/output.js';
import { train } from '../../src/cli/training.js';
import { ROOT, savedWeights, spawnCli, tempDir } from './helpers.js';

function checkState(path: string): number {
  const state = JSON.parse(readFileSync(path, 'utf8')) as {
    version: number;
    length: number;
    sum: number;
    payload: string;
  };
  assert.equal(state.payload.length, state.length);
  let sum = 0;
  for (let i = 0; i < state.payload.length; i += 997) {
    sum = (sum + state.payload.charCodeAt(i) * i) % 1_000_003;
  }
  assert.equal(sum, state.sum);
  return state.version;
}

describe('writeFileAtomic', () => {
  it('leaves the old file whole when the write fails before the rename, and no temp file', () => {
    const dir = tempDir();
    const path = join(dir, 'checkpoint.json');
    writeFileAtomic(path, '{"old":true}');
    assert.throws(
      () =>
        writeFileAtomic(path, '{"new":true}', {
          beforeRename: () => {
            throw new Error('disk full (injected)');
          },
        }),
      /disk full/,
    );
    assert.equal(readFileSync(path, 'utf8'), '{"old":true}');
    assert.deepEqual(readdirSync(dir), ['checkpoint.json']);
  });

  it('never exposes a partial file when the writer is killed at random moments', async () => {
    const dir = tempDir();
    const path = join(dir, 'state.json');
    const script = join(ROOT, 'test', 'cli', 'fixtures', 'write-forever.ts');
    let lastVersion = -1;
    for (let round = 0; round < 6; round++) {
      const child = spawn(process.execPath, ['--import', 'tsx', script, dir], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      await new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve());
        child.once('exit', (code) => reject(new Error(`writer exited early (${code})`)));
      });
      // Kill after a random delay: somewhere inside a write, an fsync or a rename.
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 200));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const version = checkState(path);
      assert.ok(version >= 0);
      lastVersion = version;
      const names = readdirSync(dir);
      assert.ok(
        names.every((n) => n === 'state.json' || isTempFileName(n)),
        `unexpected files: ${names.join(', ')}`,
      );
      removeStaleTempFiles(dir);
      assert.deepEqual(readdirSync(dir), ['state.json']);
    }
    assert.ok(lastVersion >= 0);
  });

  it('removeStaleTempFiles removes only our temporary files', () => {
    const dir = tempDir();
    writeFileSync(join(dir, '.checkpoint.json.123.0.partial'), 'half');
    writeFileSync(join(dir, 'checkpoint.json'), '{}');
    writeFileSync(join(dir, '.keep'), '');
    assert.deepEqual(removeStaleTempFiles(dir), ['.checkpoint.json.123.0.partial']);
    assert.deepEqual(readdirSync(dir).sort(), ['.keep', 'checkpoint.json']);
  });
});

describe('a training process killed mid-run', () => {
  it('leaves a valid checkpoint, and --resume reaches the uninterrupted weights', async () => {
    // 2 epochs of 10 steps; the kill comes at most 0.4 s after the first checkpoint, mid-run.
    const args = [
      '--model',
      'mlp',
      '--train-size',
      '160',
      '--test-size',
      '16',
      '--batch-size',
      '16',
    ];
    const settings = {
      model: 'mlp',
      trainSize: 160,
      testSize: 16,
      batchSize: 16,
      backend: 'cpu' as const,
      epochs: 2,
    };
    const straight = tempDir();
    await train({ ...settings, out: straight }, memoryIo({ quiet: true }));

    const killed = tempDir();
    const checkpoint = join(killed, 'checkpoint.json');
    const run = await spawnCli(
      [
        'train',
        ...args,
        '--backend',
        'cpu',
        '--epochs',
        '2',
        '--checkpoint-every',
        '1',
        '--out',
        killed,
      ],
      {
        direct: true,
        onStart: (child) => {
          // Kill (no chance to clean up) a random moment after the first checkpoints appear.
          const poll = setInterval(() => {
            if (!existsSync(checkpoint)) return;
            clearInterval(poll);
            setTimeout(() => child.kill('SIGKILL'), Math.random() * 400);
          }, 20);
          child.once('exit', () => clearInterval(poll));
        },
      },
    );
    assert.equal(run.signal, 'SIGKILL', run.err);
    assert.ok(!existsSync(join(killed, 'model')), 'the run finished before it was killed');
    const saved = loadCheckpoint(killed); // parses whole: never a partial file
    assert.ok(
      saved.globalStep >= 1 && saved.globalStep < 20,
      `checkpoint at step ${saved.globalStep}`,
    );
    const resumed = await train({ resume: killed }, memoryIo({ quiet: true }));
    assert.equal(resumed.globalStep, 20);
    const weights = savedWeights;
    assert.ok(
      weights(killed).equals(weights(straight)),
      'resumed weights differ from the uninterrupted run',
    );
    assert.ok(
      readdirSync(killed).every((n) => !isTempFileName(n)),
      'a temporary file was left behind',
    );
  });
});
