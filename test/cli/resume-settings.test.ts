/**
 * What `train --resume` keeps and refuses: the kernels' path the run started on (--native,
 * --step-graphs: each rounds differently), recorded in the checkpoint and in a set's
 * train-runs.json, so a resumed run in a fresh process takes it again; another path given on
 * resume is refused in one line, like any other changed setting. And --force with --resume
 * alone, which would replace nothing, is refused rather than ignored.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHECKPOINT_FILE } from '../../src/cli/checkpoint.js';
import { memoryContext } from '../../src/cli/context.js';
import { runCli } from '../../src/cli/main.js';
import { TRAIN_RUNS_FILE } from '../../src/cli/train-many.js';
import { onnxRuntimeUnavailableReason } from '../../src/native/onnx-runtime.js';
import { disableNativeKernels, enableNativeKernels } from '../../src/native/index.js';
import { cli, tempDir, TINY } from './helpers.js';

const unavailable = onnxRuntimeUnavailableReason();
/** TINY with SGD, for the tests where the optimizer does not matter: AdaHessian without the
 * native kernels (Hessian-vector products on the cpu backend) made this file take ~28 s. */
const FAST = [...TINY, '--optimizer', 'sgd'];

interface Path {
  native: boolean;
  stepGraphs: string;
}

function pathOf(out: string): Path {
  const doc = JSON.parse(out) as Path & { settings?: Path };
  const p = doc.settings ?? doc;
  return { native: p.native, stepGraphs: p.stepGraphs };
}

function assertOneLine(err: string, message: RegExp): void {
  assert.match(err, message);
  assert.equal(err.trim().split('\n').length, 1, err);
}

describe('train --resume keeps the kernels path', { skip: unavailable || false }, () => {
  it('a run on --native --step-graphs adahessian resumes on it in a fresh process', async () => {
    const out = tempDir();
    const started = await cli(['train', ...TINY, '--native', '--step-graphs', 'adahessian',
      '--epochs', '1', '--out', out, '--json']); // prettier-ignore
    assert.equal(started.code, 0, started.err);
    const config = JSON.parse(readFileSync(join(out, CHECKPOINT_FILE), 'utf8')).config;
    assert.equal(config.native, true);
    assert.equal(config.stepGraphs, 'adahessian');
    disableNativeKernels(); // as a fresh process finds them
    const resumed = await cli(['train', '--resume', out, '--epochs', '2', '--quiet', '--json']);
    assert.equal(resumed.code, 0, resumed.err);
    assert.deepEqual(pathOf(resumed.out), { native: true, stepGraphs: 'adahessian' });
  });

  it('a run without the native kernels resumes without them where they are on', async () => {
    const out = tempDir();
    disableNativeKernels();
    const started = await cli(['train', ...FAST, '--epochs', '1', '--out', out]);
    assert.equal(started.code, 0, started.err);
    enableNativeKernels({ backends: ['cpu'] });
    try {
      const resumed = await cli(['train', '--resume', out, '--epochs', '2', '--quiet', '--json']);
      assert.equal(resumed.code, 0, resumed.err);
      assert.deepEqual(pathOf(resumed.out), { native: false, stepGraphs: 'off' });
    } finally {
      disableNativeKernels();
    }
  });

  it('another path on --resume is refused in one line; the checkpoint is untouched', async () => {
    const out = tempDir();
    const started = await cli(['train', ...FAST, '--native', '--epochs', '1', '--out', out]);
    assert.equal(started.code, 0, started.err);
    const checkpoint = readFileSync(join(out, CHECKPOINT_FILE));
    const offGraphs = await cli([
      'train',
      '--resume',
      out,
      '--epochs',
      '2',
      '--step-graphs',
      'off',
    ]);
    assert.equal(offGraphs.code, 2);
    assertOneLine(
      offGraphs.err,
      /^error: --step-graphs off differs from the checkpoint's all; a resumed run keeps its settings .*kernels' path/,
    );
    const noNative = await cli(['train', '--resume', out, '--epochs', '2', '--no-native']);
    assert.equal(noNative.code, 2);
    assertOneLine(noNative.err, /^error: --no-native differs from the checkpoint's --native; /);
    assert.deepEqual(readFileSync(join(out, CHECKPOINT_FILE)), checkpoint);
  });

  it('a set of runs records its path in train-runs.json and resumes on it', async () => {
    const out = tempDir();
    const args = ['train', ...TINY, '--optimizers', 'sgd', '--seeds', '1', '--native',
      '--step-graphs', 'adahessian', '--epochs', '1', '--out', out]; // prettier-ignore
    const started = await cli(args);
    assert.equal(started.code, 0, started.err);
    const plan = JSON.parse(readFileSync(join(out, TRAIN_RUNS_FILE), 'utf8'));
    assert.equal(plan.settings.native, true);
    assert.equal(plan.settings.stepGraphs, 'adahessian');
    disableNativeKernels();
    const resumed = await cli(['train', '--resume', out, '--epochs', '2', '--quiet', '--json']);
    assert.equal(resumed.code, 0, resumed.err);
    assert.deepEqual(pathOf(resumed.out), { native: true, stepGraphs: 'adahessian' });
    const refused = await cli(['train', '--resume', out, '--epochs', '3', '--step-graphs', 'all']);
    assert.equal(refused.code, 2);
    assertOneLine(
      refused.err,
      /^error: --step-graphs all differs from the runs in .* \(adahessian\); resumed runs keep their settings/,
    );
  });
});

describe('train --resume of a checkpoint that does not record its path', () => {
  it('continues on the path given (or the default) and says so in one line', async () => {
    const out = tempDir();
    const started = await cli(['train', ...FAST, '--epochs', '1', '--out', out]);
    assert.equal(started.code, 0, started.err);
    const file = join(out, CHECKPOINT_FILE);
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    delete saved.config.native; // as written before the path was recorded
    delete saved.config.stepGraphs;
    delete saved.config.threads;
    writeFileSync(file, JSON.stringify(saved));
    disableNativeKernels(); // as a fresh process finds them (earlier tests turned them on)
    const resumed = await cli(['train', '--resume', out, '--epochs', '2', '--json']);
    assert.equal(resumed.code, 0, resumed.err);
    const notes = resumed.err.split('\n').filter((l) => l.includes('kernels'));
    assert.deepEqual(notes, [
      `${file} does not record the kernels' path it ran on; continuing on cpu (another path would differ from an uninterrupted run by float32 rounding).`,
    ]);
  });
});

describe('a set of runs stopped before any run finished', () => {
  it('prints the stop note, not an empty table; exit 130', async () => {
    const stop = new AbortController();
    stop.abort(); // Ctrl-C already pressed: the first run stops after its first step
    const ctx = memoryContext(stop.signal);
    const out = tempDir();
    const args = ['train', ...TINY.filter((a) => a !== '--quiet'), '--optimizers', 'sgd',
      '--seeds', '1,2', '--epochs', '1', '--out', out]; // prettier-ignore
    assert.equal(await runCli(args, ctx), 130, ctx.err());
    assert.equal(ctx.out(), '');
    assert.match(ctx.err(), /Stopped after 0 of 2 runs; continue with: adahessian train --resume /);
  });
});

describe('train --resume --force', () => {
  it('is refused in one line for a single run, which continues untouched', async () => {
    const out = tempDir();
    const started = await cli(['train', ...FAST, '--epochs', '1', '--out', out]);
    assert.equal(started.code, 0, started.err);
    const checkpoint = readFileSync(join(out, CHECKPOINT_FILE));
    const forced = await cli(['train', '--resume', out, '--epochs', '2', '--force']);
    assert.equal(forced.code, 2);
    assertOneLine(forced.err, /^error: --force with --resume .*replaces nothing; drop --force/);
    assert.deepEqual(readFileSync(join(out, CHECKPOINT_FILE)), checkpoint);
    // With --force as the help describes it (--out DIR --force), the run starts over.
    const over = await cli(['train', ...FAST, '--epochs', '1', '--out', out, '--force']);
    assert.equal(over.code, 0, over.err);
  });

  it('a new set with --out DIR --force starts every run over, reusing none', async () => {
    const out = tempDir();
    const set = ['train', ...TINY, '--optimizers', 'sgd', '--seeds', '1', '--epochs', '1',
      '--out', out]; // prettier-ignore
    const first = await cli(set);
    assert.equal(first.code, 0, first.err);
    // The same run names (optimizer, rate, seed), another batch size.
    const again = await cli([...set, '--batch-size', '32', '--force', '--json']);
    assert.equal(again.code, 0, again.err);
    const runs = (JSON.parse(again.out) as { runs: { reused?: boolean; dir: string }[] }).runs;
    assert.deepEqual(
      runs.map((r) => r.reused ?? false),
      [false],
    );
    const metrics = JSON.parse(readFileSync(join(runs[0]!.dir, 'metrics.json'), 'utf8'));
    assert.equal(metrics.config.batchSize, 32);
  });

  it('is refused for a set of runs, and so is --out elsewhere', async () => {
    const out = tempDir();
    const started = await cli(['train', ...TINY, '--optimizers', 'sgd', '--seeds', '1',
      '--epochs', '1', '--out', out]); // prettier-ignore
    assert.equal(started.code, 0, started.err);
    const forced = await cli(['train', '--resume', out, '--epochs', '2', '--force']);
    assert.equal(forced.code, 2);
    assertOneLine(forced.err, /^error: --force with --resume /);
    const elsewhere = await cli(['train', '--resume', out, '--out', tempDir(), '--epochs', '2']);
    assert.equal(elsewhere.code, 2);
    assertOneLine(elsewhere.err, /a set of runs continues in its own directory; drop --out/);
  });
});
