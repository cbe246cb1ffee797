/**
 * --threads: ONNX Runtime's intra-op threads for the native kernels and step graphs. A positive
 * integer (one line otherwise), refused where there are no native kernels to serve, handed to
 * every ONNX Runtime session the run compiles, reported in the commands' JSON, and kept by
 * --resume like the rest of the kernels' path (more than one thread rounds differently), with
 * checkpoints from before it was recorded taken as one thread.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prepareBackend } from '../../src/cli/backend.js';
import { CHECKPOINT_FILE } from '../../src/cli/checkpoint.js';
import { demo } from '../../src/cli/commands/demo.js';
import { sweep } from '../../src/cli/commands/sweep.js';
import { memoryIo } from '../../src/cli/output.js';
import { TRAIN_RUNS_FILE } from '../../src/cli/train-many.js';
import {
  disableNativeKernels,
  nativeKernelStatus,
  stepGraphsStatus,
} from '../../src/native/index.js';
import {
  loadOnnxRuntime,
  onnxRuntimeUnavailableReason,
  reloadOnnxRuntimeForTesting,
} from '../../src/native/onnx-runtime.js';
import { cli, tempDir, TINY } from './helpers.js';

const unavailable = onnxRuntimeUnavailableReason() || false;
/** TINY with SGD: the optimizer does not matter here, and SGD's steps are the cheapest. */
const FAST = [...TINY, '--optimizer', 'sgd'];

function assertOneLine(err: string, message: RegExp): void {
  assert.match(err.trim(), message);
  assert.equal(err.trim().split('\n').length, 1, err);
}

/** The intra-op threads of every ONNX Runtime session created while `run` runs. */
async function sessionThreads(run: () => Promise<void>): Promise<number[]> {
  // Both the kernels' cache and the step graphs take the constructor from here at each compile
  // (its methods are read-only, so a subclass stands in for it).
  const exports = loadOnnxRuntime()!.binding.binding as unknown as {
    InferenceSession: new () => { loadModel(...args: unknown[]): void };
  };
  const Original = exports.InferenceSession;
  const threads: number[] = [];
  exports.InferenceSession = class extends Original {
    override loadModel(...args: unknown[]): void {
      const options = args[3] as { intraOpNumThreads?: number; graphOptimizationLevel?: string };
      // The NCHWc probe (translate-conv.ts) asks ONNX Runtime one question, on one thread.
      if (options.graphOptimizationLevel !== 'disabled') threads.push(options.intraOpNumThreads!);
      super.loadModel(...args);
    }
  };
  try {
    await run();
  } finally {
    exports.InferenceSession = Original;
  }
  return threads;
}

describe('--threads: parsing and refusal', () => {
  it('takes a positive integer; anything else is one line', async () => {
    for (const bad of ['0', '-1', '1.5', 'two']) {
      const run = await cli(['train', ...FAST, '--threads', bad]);
      assert.equal(run.code, 2, bad);
      assertOneLine(
        run.err,
        new RegExp(
          `^error: option '--threads <n>' argument '${bad}' is invalid\\. expected a positive integer`,
        ),
      );
    }
    // The library's callers (settings read from a file) get the same check.
    await assert.rejects(
      prepareBackend('cpu', undefined, undefined, undefined, 0),
      /^CliUsageError: --threads must be a positive integer, got 0\.$/,
    );
  });

  it('is refused in one line where no native kernels run, by every command', async () => {
    const out = tempDir();
    const model = join(out, 'no-model');
    const commands = [
      ['train', ...FAST],
      ['train', ...TINY, '--optimizers', 'sgd', '--seeds', '1'],
      ['sweep', ...TINY, '--optimizers', 'sgd', '--out', out],
      ['bench', '--model', 'mlp', '--backend', 'cpu'],
      ['demo', '--out', out],
      ['analyze', model, '--backend', 'cpu'],
    ];
    for (const args of commands) {
      const run = await cli([...args, '--no-native', '--threads', '2']);
      assert.equal(run.code, 2, args.join(' '));
      assertOneLine(
        run.err,
        /^error: --threads 2: ONNX Runtime's threads serve the native kernels, and this command runs without them \(--no-native\); drop --threads\.$/,
      );
    }
    disableNativeKernels();
    const wasm = await cli(['train', ...FAST, '--backend', 'wasm', '--threads', '2']);
    assert.equal(wasm.code, 2);
    if (!unavailable) {
      assertOneLine(wasm.err, /runs on wasm without them; drop --threads or add --native\.$/);
    }
    const tfjsNode = await cli(['train', ...FAST, '--backend', 'tensorflow', '--threads', '2']);
    assert.equal(tfjsNode.code, 2);
    assertOneLine(tfjsNode.err, /^error: --threads 2: .*this command runs on tensorflow; drop/);
  });
});

describe('--threads without onnxruntime-node', () => {
  after(() => reloadOnnxRuntimeForTesting());

  it('says why the native kernels are not there, and no --native hint (it would fail too)', async () => {
    disableNativeKernels();
    reloadOnnxRuntimeForTesting('onnxruntime-node-that-is-not-installed');
    // Without --backend and --quiet: the fastest path, whose fallback note would be a second line.
    const fastest = FAST.filter(
      (a, i) => a !== '--quiet' && a !== '--backend' && FAST[i - 1] !== '--backend',
    );
    for (const args of [fastest, [...FAST, '--backend', 'wasm'], FAST]) {
      const run = await cli(['train', ...args, '--threads', '2']);
      assert.equal(run.code, 2, args.join(' '));
      assertOneLine(
        run.err,
        /^error: --threads 2: .* runs on (wasm|cpu) without them; drop --threads\. The native kernels are not available: onnxruntime-node could not be loaded: it is not installed\. .*npm install onnxruntime-node@[0-9.]+$/,
      );
      assert.doesNotMatch(run.err, /add --native/);
    }
    const native = await cli(['train', ...FAST, '--native', '--threads', '2']);
    assert.equal(native.code, 2);
    assertOneLine(native.err, /^error: --native: onnxruntime-node could not be loaded: /);
  });
});

describe('--threads with the native kernels', { skip: unavailable }, () => {
  after(() => disableNativeKernels());

  it('reaches every ONNX Runtime session of a run, and the path switches back', async () => {
    disableNativeKernels();
    let doc: { threads: number; config: { threads: number } } | undefined;
    const threads = await sessionThreads(async () => {
      const run = await cli(['train', ...FAST, '--native', '--threads', '2', '--json']);
      assert.equal(run.code, 0, run.err);
      doc = JSON.parse(run.out);
    });
    assert.equal(doc!.threads, 2);
    assert.equal(doc!.config.threads, 2);
    assert.equal(nativeKernelStatus().threads, 2);
    assert.ok(stepGraphsStatus().compiled >= 1, 'a step graph was compiled');
    assert.ok(threads.length >= 2, `sessions: ${threads.length}`);
    assert.deepEqual(new Set(threads), new Set([2]));
    // On kernels already on: another value re-enables them, none keeps them as they are.
    assert.equal((await prepareBackend('cpu', true)).threads, 2);
    assert.equal((await prepareBackend('cpu', true, undefined, 'adahessian', 1)).threads, 1);
    assert.equal(nativeKernelStatus().threads, 1);
    assert.equal(nativeKernelStatus().stepGraphs, 'adahessian');
    assert.equal((await prepareBackend('cpu', true, undefined, undefined, 3)).threads, 3);
    assert.equal(nativeKernelStatus().stepGraphs, 'adahessian', 'the step graphs kept');
    assert.equal((await prepareBackend('cpu', false)).threads, null);
    // Without --backend (the fastest path), from kernels off.
    disableNativeKernels();
    const fastest = await prepareBackend(undefined, undefined, memoryIo(), undefined, 2);
    assert.deepEqual(fastest, { backend: 'cpu', native: true, stepGraphs: 'all', threads: 2 });
    assert.equal(nativeKernelStatus().threads, 2);
  });

  it("bench's first note, train's summary and a set's table name the path with its threads", async () => {
    const benchRun = await cli(['bench', '--model', 'mlp', '--batch-size', '16', '--backend', 'cpu',
      '--native', '--threads', '2', '--optimizers', 'sgd', '--steps', '1', '--rounds', '1',
      '--warmup', '1']); // prettier-ignore
    assert.equal(benchRun.code, 0, benchRun.err);
    const path = 'cpu \\+ native kernels, step graphs all, 2 threads';
    assert.match(benchRun.err.split('\n')[0]!, new RegExp(`^bench: .* mlp on ${path}$`));
    assert.match(benchRun.out, new RegExp(`^Time per step, mlp, batch 16, ${path} \\(`));
    const trained = await cli(['train', ...FAST, '--native', '--threads', '2']);
    assert.equal(trained.code, 0, trained.err);
    assert.match(trained.out.split('\n')[0]!, new RegExp(`, seed 1, ${path}$`));
    const off = await cli(['train', ...FAST, '--no-native']);
    assert.match(off.out.split('\n')[0]!, /, seed 1, cpu$/);
    const set = await cli(['train', ...TINY, '--optimizers', 'sgd', '--seeds', '1', '--native',
      '--threads', '2', '--step-graphs', 'adahessian']); // prettier-ignore
    assert.equal(set.code, 0, set.err);
    assert.match(
      set.out.split('\n')[0]!,
      /, cpu \+ native kernels, step graphs adahessian, 2 threads; mean \+- std over seeds 1:$/,
    );
  });

  it('is recorded in the checkpoint, kept by --resume in a fresh process, another refused', async () => {
    const out = tempDir();
    const args = ['train', ...FAST, '--native', '--threads', '2', '--epochs', '1', '--out', out];
    const started = await cli(args);
    assert.equal(started.code, 0, started.err);
    const file = join(out, CHECKPOINT_FILE);
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).config.threads, 2);
    assert.equal(JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')).config.threads, 2);
    const checkpoint = readFileSync(file);
    const refused = await cli(['train', '--resume', out, '--epochs', '2', '--threads', '1']);
    assert.equal(refused.code, 2);
    assertOneLine(
      refused.err,
      /^error: --threads 1 differs from the checkpoint's 2; a resumed run keeps its settings .*kernels' path/,
    );
    assert.deepEqual(readFileSync(file), checkpoint);
    disableNativeKernels(); // as a fresh process finds them
    const resumed = await cli(['train', '--resume', out, '--epochs', '2', '--quiet', '--json']);
    assert.equal(resumed.code, 0, resumed.err);
    assert.equal(JSON.parse(resumed.out).threads, 2);
    assert.equal(nativeKernelStatus().threads, 2);
  });

  it('a checkpoint with the native kernels from before --threads was recorded ran on 1', async () => {
    const out = tempDir();
    disableNativeKernels(); // as a fresh process finds them
    const started = await cli(['train', ...FAST, '--native', '--threads', '1', '--epochs', '1',
      '--out', out]); // prettier-ignore
    assert.equal(started.code, 0, started.err);
    const file = join(out, CHECKPOINT_FILE);
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(saved.config.threads, 1);
    delete saved.config.threads; // as written before it was recorded
    writeFileSync(file, JSON.stringify(saved));
    const refused = await cli(['train', '--resume', out, '--epochs', '2', '--threads', '2']);
    assert.equal(refused.code, 2);
    assertOneLine(refused.err, /^error: --threads 2 differs from the checkpoint's 1; /);
    await prepareBackend('cpu', true, undefined, undefined, 2); // on 2 threads now
    const resumed = await cli(['train', '--resume', out, '--epochs', '2', '--quiet', '--json']);
    assert.equal(resumed.code, 0, resumed.err);
    assert.equal(JSON.parse(resumed.out).threads, 1);
    assert.equal(nativeKernelStatus().threads, 1);
  });

  it('a run without the native kernels refuses --threads on --resume', async () => {
    const out = tempDir();
    const started = await cli(['train', ...FAST, '--no-native', '--epochs', '1', '--out', out]);
    assert.equal(started.code, 0, started.err);
    assert.equal(
      JSON.parse(readFileSync(join(out, CHECKPOINT_FILE), 'utf8')).config.threads,
      undefined,
    );
    const refused = await cli(['train', '--resume', out, '--epochs', '2', '--threads', '2']);
    assert.equal(refused.code, 2);
    assertOneLine(
      refused.err,
      /^error: --threads 2: the checkpoint's run is without the native kernels, .*\(drop --threads\)\.$/,
    );
  });

  it('a set of runs records it in train-runs.json and resumes on it', async () => {
    const out = tempDir();
    const started = await cli(['train', ...TINY, '--optimizers', 'sgd', '--seeds', '1',
      '--native', '--threads', '2', '--epochs', '1', '--out', out, '--json']); // prettier-ignore
    assert.equal(started.code, 0, started.err);
    assert.equal(JSON.parse(started.out).settings.threads, 2);
    const plan = JSON.parse(readFileSync(join(out, TRAIN_RUNS_FILE), 'utf8'));
    assert.equal(plan.settings.threads, 2);
    const run = join(
      out,
      readdirSync(out).find((f) => f.startsWith('sgd-'))!,
    );
    assert.equal(JSON.parse(readFileSync(join(run, 'metrics.json'), 'utf8')).config.threads, 2);
    const refused = await cli(['train', '--resume', out, '--epochs', '2', '--threads', '1']);
    assert.equal(refused.code, 2);
    assertOneLine(refused.err, /^error: --threads 1 differs from the runs in .* \(2\); /);
    disableNativeKernels();
    const resumed = await cli(['train', '--resume', out, '--epochs', '2', '--quiet', '--json']);
    assert.equal(resumed.code, 0, resumed.err);
    assert.equal(JSON.parse(resumed.out).settings.threads, 2);
    assert.equal(nativeKernelStatus().threads, 2);
  });

  it('sweep records it with each run and reuses a run only on the same threads', async () => {
    const options = {
      model: 'mlp',
      trainSize: 32,
      testSize: 16,
      batchSize: 16,
      backend: 'cpu' as const,
      native: true,
      optimizers: ['sgd' as const],
      scales: [1],
      block: false,
      out: tempDir(),
    };
    const quiet = () => memoryIo({ quiet: true });
    const first = await sweep({ ...options, threads: 2 }, quiet());
    assert.equal(first.settings.threads, 2);
    const runs = join(options.out, 'runs');
    const saved = JSON.parse(readFileSync(join(runs, readdirSync(runs)[0]!), 'utf8'));
    assert.equal(saved.kernels.threads, 2);
    const same = await sweep({ ...options, threads: 2, resume: true }, quiet());
    assert.equal(same.learningRate[0]!.reused, true);
    const other = await sweep({ ...options, threads: 1, resume: true }, quiet());
    assert.equal(other.learningRate[0]!.reused, undefined, 'rerun on one thread');
  });

  it('demo reports it in its settings', async () => {
    const result = await demo(
      {
        epochs: 1,
        trainSize: 64,
        testSize: 32,
        batchSize: 32,
        analysisBatch: 16,
        analysis: { topN: 1, eigenIters: 3, traceIters: 2, densityIters: 3 },
        backend: 'cpu',
        native: true,
        threads: 2,
        out: tempDir(),
      },
      memoryIo({ quiet: true }),
    );
    assert.equal(result.settings.threads, 2);
    assert.equal(result.settings.native, true);
    assert.equal(nativeKernelStatus().threads, 2);
  });
});
