/**
 * demo and analyze take the lock of their --out (run-lock.ts, as train and sweep do): a second
 * writer on a busy directory is refused in one line and leaves its files alone, and a finished
 * command leaves no lock behind; once locked, analyze and sweep remove the temporary files of a
 * writer killed between write and rename. And a usage error that commander reports (a bad option value,
 * an unknown option or command) is one line, the pointer to --help included.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { acquireRunLock, LOCK_FILE } from '../../src/cli/run-lock.js';
import { cli, tempDir, TINY } from './helpers.js';

const ANALYZE_BUDGET = ['--batch-size', '16', '--top-n', '1', '--eigen-iters', '4',
  '--trace-iters', '2', '--density-iters', '4', '--backend', 'cpu', '--quiet']; // prettier-ignore

function assertOneLine(err: string, message: RegExp): void {
  assert.match(err.trimEnd(), message);
  assert.equal(err.trim().split('\n').length, 1, err);
}

describe('demo and analyze lock their --out', () => {
  it('analyze on a busy --out is refused and leaves its files; when done, no lock is left', async () => {
    const run = tempDir();
    const trained = await cli(['train', ...TINY, '--epochs', '1', '--out', run]);
    assert.equal(trained.code, 0, trained.err);
    const out = tempDir();
    writeFileSync(join(out, 'analysis.json'), 'the other writer');
    const lock = acquireRunLock(out, '--out'); // held by a live process: this one
    try {
      const busy = await cli(['analyze', run, ...ANALYZE_BUDGET, '--out', out]);
      assert.equal(busy.code, 2, busy.err);
      assertOneLine(busy.err, /^error: --out .* is in use by another run \(process \d+/);
      assert.equal(readFileSync(join(out, 'analysis.json'), 'utf8'), 'the other writer');
    } finally {
      lock.release();
    }
    // What a writer killed (kill -9) between write and rename leaves: removed once locked.
    const killedWriters = join(out, '.analysis.json.999999.0.partial');
    writeFileSync(killedWriters, 'half');
    const free = await cli(['analyze', run, ...ANALYZE_BUDGET, '--out', out]);
    assert.equal(free.code, 0, free.err);
    assert.ok(!existsSync(killedWriters), "a dead writer's temporary file was left");
    assert.notEqual(readFileSync(join(out, 'analysis.json'), 'utf8'), 'the other writer');
    assert.ok(!existsSync(join(out, LOCK_FILE)), 'lock left behind');
  });

  it('demo on a busy --out is refused before it trains, and leaves its files', async () => {
    const out = tempDir();
    writeFileSync(join(out, 'report.html'), 'the other writer');
    const lock = acquireRunLock(out, '--out');
    try {
      const busy = await cli(['demo', '--epochs', '1', '--train-size', '64', '--test-size', '32',
        '--backend', 'cpu', '--quiet', '--out', out]); // prettier-ignore
      assert.equal(busy.code, 2, busy.err);
      assertOneLine(busy.err, /^error: --out .* is in use by another run \(process \d+/);
    } finally {
      lock.release();
    }
    assert.deepEqual(readdirSync(out), ['report.html']);
    assert.equal(readFileSync(join(out, 'report.html'), 'utf8'), 'the other writer');
  });
});

describe("sweep removes a killed writer's temporary files", () => {
  it('in --out and --out/runs, once it holds the lock', async () => {
    const out = tempDir();
    mkdirSync(join(out, 'runs'));
    const left = [join(out, '.sweep.json.999999.0.partial'),
      join(out, 'runs', '.sgd-lr0.01-seed1.json.999999.1.partial')]; // prettier-ignore
    for (const f of left) writeFileSync(f, 'half');
    const swept = await cli(['sweep', '--model', 'mlp', '--train-size', '32', '--test-size', '16',
      '--batch-size', '16', '--optimizers', 'sgd', '--scales', '1', '--no-block', '--backend',
      'cpu', '--quiet', '--out', out]); // prettier-ignore
    assert.equal(swept.code, 0, swept.err);
    for (const f of left) assert.ok(!existsSync(f), `left: ${f}`);
  });
});

describe('an empty path is refused (an unset shell variable in --out "$DIR")', () => {
  // Taken as is, '' is the current directory, where a run would write its files; the runs are
  // tiny and in a scratch directory, so that unfixed code fails fast and writes nowhere else.
  const TINY_TRAIN = ['--model', 'mlp', '--train-size', '16', '--test-size', '16', '--batch-size',
    '16', '--epochs', '1', '--backend', 'cpu', '--quiet']; // prettier-ignore
  const cases: [string[], string][] = [
    [['train', '--out', '', ...TINY_TRAIN], '--out <dir>'],
    [['train', '--resume', '', '--quiet'], '--resume <dir>'],
    [['train', '--data', '', ...TINY_TRAIN], '--data <path>'],
    [['sweep', '--out', '', ...TINY_TRAIN, '--optimizers', 'sgd', '--scales', '1', '--no-block'], '--out <dir>'],
    [['demo', '--out', '', '--train-size', '99999', '--quiet'], '--out <dir>'],
    [['analyze', 'no-model', '--out', '', '--quiet'], '--out <dir>'],
  ]; // prettier-ignore
  for (const [args, option] of cases) {
    it(`adahessian ${args.slice(0, args.indexOf('')).join(' ')} ''`, async () => {
      const scratch = tempDir();
      const cwd = process.cwd();
      process.chdir(scratch);
      try {
        const { code, err } = await cli(args);
        assert.equal(code, 2, err);
        const message = `error: option '${option}' argument '' is invalid. expected a path, got an empty string. (see adahessian ${args[0]} --help)`;
        assert.equal(err.trimEnd(), message);
        assert.deepEqual(readdirSync(scratch), []);
      } finally {
        process.chdir(cwd);
      }
    });
  }
});

describe('usage errors found by the option parser are one line', () => {
  const cases: { args: string[]; message: RegExp }[] = [
    {
      args: ['train', '--epochs', '-1'],
      message:
        /^error: option '--epochs <n>' argument '-1' is invalid\. expected a positive integer, got '-1'\. \(see adahessian train --help\)$/,
    },
    {
      args: ['analyze', '--top-n', 'NaN', 'x'],
      message: /^error: option '--top-n <n>' .*'NaN'.* \(see adahessian analyze --help\)$/,
    },
    { args: ['sweep', '--bogus'], message: /^error: unknown option '--bogus' \(see adahessian sweep --help\)$/ },
    { args: ['analyze'], message: /^error: missing required argument 'model' \(see adahessian analyze --help\)$/ },
    { args: ['trian'], message: /^error: unknown command 'trian' \(Did you mean train\?\) \(see adahessian --help\)$/ },
  ]; // prettier-ignore
  for (const c of cases) {
    it(`adahessian ${c.args.join(' ')}`, async () => {
      const { code, err, out } = await cli(c.args);
      assert.equal(code, 2);
      assert.equal(out, '');
      assertOneLine(err, c.message);
    });
  }
});
