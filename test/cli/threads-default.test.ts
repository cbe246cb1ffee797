/**
 * ONNX Runtime's thread count when nobody gives one (src/native/threads.ts): DEFAULT_THREADS
 * resolved ('auto': the machine's logical processors, at most AUTO_THREADS_CAP), the
 * ADAHESSIAN_THREADS override (the test script pins 1 with it), one line for nonsense, and
 * what runs, prints and is recorded: the resolved number. Also that the results commands
 * (scripts/results/tables.ts) and the test script pin one thread.
 */
import { after, afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { CHECKPOINT_FILE } from '../../src/cli/checkpoint.js';
import { demo } from '../../src/cli/commands/demo.js';
import { memoryIo } from '../../src/cli/output.js';
import {
  disableNativeKernels,
  enableNativeKernels,
  nativeKernelStatus,
} from '../../src/native/index.js';
import { loadOnnxRuntime, onnxRuntimeUnavailableReason } from '../../src/native/onnx-runtime.js';
import {
  AUTO_THREADS_CAP,
  autoThreads,
  DEFAULT_THREADS,
  defaultThreads,
  MAX_THREADS,
  resolveThreads,
  THREADS_ENV,
} from '../../src/native/threads.js';
import { TABLES } from '../../scripts/results/tables.js';
import { cli, ROOT, tempDir, TINY } from './helpers.js';

const unavailable = onnxRuntimeUnavailableReason() || false;
const FAST = [...TINY, '--optimizer', 'sgd'];
const pinned = process.env[THREADS_ENV];

/** Runs `body` with ADAHESSIAN_THREADS set to `value` (undefined: unset). */
async function withEnv<T>(value: string | undefined, body: () => Promise<T> | T): Promise<T> {
  const before = process.env[THREADS_ENV];
  if (value === undefined) delete process.env[THREADS_ENV];
  else process.env[THREADS_ENV] = value;
  try {
    return await body();
  } finally {
    if (before === undefined) delete process.env[THREADS_ENV];
    else process.env[THREADS_ENV] = before;
  }
}

/** Runs `body` with ADAHESSIAN_ORT_SPINNING set to `value` (undefined: unset). */
async function withSpinningEnv<T>(value: string | undefined, body: () => Promise<T>): Promise<T> {
  const name = 'ADAHESSIAN_ORT_SPINNING';
  const before = process.env[name];
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
  try {
    return await body();
  } finally {
    if (before === undefined) delete process.env[name];
    else process.env[name] = before;
  }
}

function assertOneLine(err: string, message: RegExp): void {
  assert.match(err.trim(), message);
  assert.equal(err.trim().split('\n').length, 1, err);
}

describe('the default thread count', () => {
  afterEach(() => {
    if (pinned === undefined) delete process.env[THREADS_ENV];
    else process.env[THREADS_ENV] = pinned;
  });

  it("'auto' is the machine's logical processors, capped; the default resolves DEFAULT_THREADS", async () => {
    assert.equal(autoThreads(), Math.min(availableParallelism(), AUTO_THREADS_CAP));
    assert.equal(resolveThreads('auto'), autoThreads());
    assert.equal(resolveThreads(3), 3);
    await withEnv(undefined, () => {
      const expected = DEFAULT_THREADS === 'auto' ? autoThreads() : DEFAULT_THREADS;
      assert.equal(defaultThreads(), expected);
      assert.equal(resolveThreads(undefined), expected);
    });
  });

  it('ADAHESSIAN_THREADS overrides it; nonsense is one line naming the variable', async () => {
    await withEnv('3', () => assert.equal(defaultThreads(), 3));
    await withEnv('auto', () => assert.equal(defaultThreads(), autoThreads()));
    await withEnv('', () => assert.equal(defaultThreads(), resolveThreads(DEFAULT_THREADS)));
    for (const bad of ['two', '0', '-1', '1.5', String(MAX_THREADS + 1), '2x']) {
      await withEnv(bad, () =>
        assert.throws(
          () => defaultThreads(),
          new RegExp(
            `^Error: ADAHESSIAN_THREADS='${bad.replace('.', '\\.')}': expected a positive integer up to ${MAX_THREADS}, or 'auto'\\.$`,
          ),
        ),
      );
    }
  });

  it('the test script pins one thread, and every results command pins --threads 1', () => {
    const scripts = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts;
    assert.match(scripts.test, /ADAHESSIAN_THREADS=1 node --import tsx --test /);
    for (const table of TABLES) {
      const args = table.args();
      if (args === null) continue;
      const i = args.indexOf('--threads');
      assert.ok(i >= 0 && args[i + 1] === '1', `${table.name}: ${args.join(' ')}`);
    }
  });
});

describe('the default thread count, run', { skip: unavailable }, () => {
  after(() => disableNativeKernels());
  afterEach(() => {
    if (pinned === undefined) delete process.env[THREADS_ENV];
    else process.env[THREADS_ENV] = pinned;
  });

  it('enableNativeKernels takes it, and says how many; bad counts are one line', async () => {
    await withEnv(undefined, () => {
      assert.equal(enableNativeKernels().threads, resolveThreads(DEFAULT_THREADS));
    });
    await withEnv('3', () => assert.equal(enableNativeKernels().threads, 3));
    assert.equal(enableNativeKernels({ threads: 'auto' }).threads, autoThreads());
    assert.equal(nativeKernelStatus().threads, autoThreads());
    for (const bad of [0, 1.5, MAX_THREADS + 1, 'two']) {
      assert.throws(
        () => enableNativeKernels({ threads: bad as number }),
        /^Error: enableNativeKernels: 'threads' (must be a positive integer or 'auto'|is more than 256, .*), got .*\.$/,
      );
    }
    disableNativeKernels();
  });

  it('the CLI: the default path runs on it and names it; --threads auto; one line for nonsense', async () => {
    disableNativeKernels(); // as a fresh process finds them
    const three = await withEnv('3', () => cli(['train', ...FAST, '--native', '--json']));
    assert.equal(three.code, 0, three.err);
    assert.equal(JSON.parse(three.out).threads, 3);
    disableNativeKernels();
    const shown = await withEnv('3', () => cli(['train', ...FAST, '--native']));
    assert.match(shown.out.split('\n')[0]!, /, cpu \+ native kernels, step graphs all, 3 threads$/);
    const auto = await cli(['train', ...FAST, '--native', '--threads', 'auto', '--json']);
    assert.equal(auto.code, 0, auto.err);
    assert.equal(JSON.parse(auto.out).threads, autoThreads());
    disableNativeKernels();
    const bad = await withEnv('lots', () => cli(['train', ...FAST, '--native']));
    assert.equal(bad.code, 2);
    assertOneLine(
      bad.err,
      /^error: ADAHESSIAN_THREADS='lots': expected a positive integer up to 256, or 'auto'\.$/,
    );
    const many = await cli(['train', ...FAST, '--native', '--threads', String(MAX_THREADS + 1)]);
    assert.equal(many.code, 2);
    assertOneLine(
      many.err,
      /^error: option '--threads <n>' argument '257' is invalid\. expected a positive integer up to 256, or 'auto', got '257'\. \(see adahessian train --help\)$/,
    );
  });

  it('a checkpoint records the number that ran, and --resume keeps it whatever the default now', async () => {
    const out = tempDir();
    disableNativeKernels();
    const started = await withEnv('3', () =>
      cli(['train', ...FAST, '--native', '--epochs', '1', '--out', out]),
    );
    assert.equal(started.code, 0, started.err);
    const saved = JSON.parse(readFileSync(join(out, CHECKPOINT_FILE), 'utf8'));
    assert.equal(saved.config.threads, 3);
    disableNativeKernels();
    const resumed = await withEnv('1', () =>
      cli(['train', '--resume', out, '--epochs', '2', '--quiet', '--json']),
    );
    assert.equal(resumed.code, 0, resumed.err);
    assert.equal(JSON.parse(resumed.out).threads, 3);
    assert.equal(nativeKernelStatus().threads, 3);
  });

  it('every ONNX Runtime session runs without spinning threads, unless ADAHESSIAN_ORT_SPINNING=1', async () => {
    const spinning = async (env: string | undefined) => {
      const exports = loadOnnxRuntime()!.binding.binding as unknown as {
        InferenceSession: new () => { loadModel(...args: unknown[]): void };
      };
      const Original = exports.InferenceSession;
      const seen = new Set<string>();
      exports.InferenceSession = class extends Original {
        override loadModel(...args: unknown[]): void {
          const extra = (args[3] as { extra?: { session?: { intra_op?: object } } }).extra;
          const intraOp = extra?.session?.intra_op as { allow_spinning?: string } | undefined;
          seen.add(intraOp?.allow_spinning ?? 'unset');
          super.loadModel(...args);
        }
      };
      try {
        disableNativeKernels();
        const run = await withEnv(undefined, () =>
          withSpinningEnv(env, () => cli(['train', ...FAST, '--native', '--threads', '2'])),
        );
        assert.equal(run.code, 0, run.err);
      } finally {
        exports.InferenceSession = Original;
      }
      return [...seen];
    };
    // The kernels' cache and the step graphs (the NCHWc probe sets none: it runs on one thread).
    assert.deepEqual(
      (await spinning(undefined)).filter((v) => v !== 'unset'),
      ['0'],
    );
    assert.deepEqual(
      (await spinning('1')).filter((v) => v !== 'unset'),
      ['1'],
    );
  });

  it("demo's settings say the number that ran", async () => {
    disableNativeKernels();
    const result = await withEnv('3', () =>
      demo(
        {
          epochs: 1,
          trainSize: 32,
          testSize: 16,
          batchSize: 32,
          analysisBatch: 8,
          analysis: { topN: 1, eigenIters: 2, traceIters: 1, densityIters: 2 },
          out: tempDir(),
        },
        memoryIo({ quiet: true }),
      ),
    );
    assert.equal(result.settings.native, true);
    assert.equal(result.settings.threads, 3);
  });
});
