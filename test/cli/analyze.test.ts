/**
 * `adahessian analyze`: micro-batches, the residual each top eigenvalue met, and running out
 * of memory reported as one line (the stack only with --debug).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { HessianAnalyzer } from '../../src/analysis/index.js';
import { analyze } from '../../src/cli/commands/analyze.js';
import { isOutOfMemory, outOfMemoryError } from '../../src/cli/analysis.js';
import { memoryIo } from '../../src/cli/output.js';
import { train } from '../../src/cli/training.js';
import { useBackend, WasmHeapFullError } from '../../src/index.js';
import { cli, tempDir } from './helpers.js';

const quiet = () => memoryIo({ quiet: true });

describe('analyze command', () => {
  let run: string;
  before(async () => {
    await useBackend('cpu');
    run = tempDir();
    await train(
      {
        model: 'mlp',
        trainSize: 32,
        testSize: 16,
        batchSize: 16,
        epochs: 1,
        backend: 'cpu',
        out: run,
      },
      quiet(),
    );
  });

  it('--micro-batch gives the same analysis; residuals and tol are in the JSON and the summary', async () => {
    const common = {
      model: run,
      backend: 'cpu' as const,
      batchSize: 24,
      topN: 1,
      eigenIters: 6,
      traceIters: 2,
      densityIters: 3,
    };
    const whole = await analyze({ ...common, out: tempDir() }, quiet());
    const micro = await analyze({ ...common, microBatch: 5, out: tempDir() }, quiet());
    assert.equal(micro.settings.microBatch, 5);
    assert.ok(whole.settings.microBatch >= 24, 'auto: the MLP at 24 is not split');
    assert.ok(Math.abs(whole.loss - micro.loss) <= 1e-6 * whole.loss, 'same loss');
    // The same probes through the same operator: equal up to float32 rounding.
    const [t1, t2] = [whole.report.trace!, micro.report.trace!];
    assert.ok(Math.abs(t1.trace - t2.trace) <= 1e-4 * (Math.abs(t1.trace) + t1.stdError), 'trace');
    const top = whole.report.topEigenvalues!;
    assert.equal(top.tol, 1e-3);
    assert.equal(top.residuals.length, 1);
    assert.equal(top.converged[0], top.residuals[0]! <= top.tol);
    const saved = JSON.parse(readFileSync(whole.files.json, 'utf8'));
    assert.deepEqual(saved.report.topEigenvalues.residuals, top.residuals);
    assert.equal(saved.settings.microBatch, whole.settings.microBatch);

    const { code, out } = await cli([
      'analyze',
      run,
      '--backend',
      'cpu',
      '--batch-size',
      '24',
      '--micro-batch',
      '10',
      '--top-n',
      '1',
      '--eigen-iters',
      '8',
      '--eigen-tol',
      '0.5',
      '--trace-iters',
      '2',
      '--density-iters',
      '3',
      '--out',
      tempDir(),
    ]);
    assert.equal(code, 0);
    assert.match(out, /micro-batches of at most 10/);
    assert.match(
      out,
      /top eigenvalues: \S+ \(lanczos, \d+ products; relative residuals \|\|Hv - lv\|\|\/\|l\| \S+: all within tol 0\.5\)/,
    );
  });

  describe('running out of memory', () => {
    const original = HessianAnalyzer.prototype.analyze;
    before(() => {
      // What wasm throws when its 4 GB heap is full (seen with ResNet-20 at batch 128).
      HessianAnalyzer.prototype.analyze = () =>
        Promise.reject(new WebAssembly.RuntimeError('memory access out of bounds'));
    });
    after(() => {
      HessianAnalyzer.prototype.analyze = original;
    });

    it('is one line naming --micro-batch and --batch-size, exit 1; --debug shows the stack', async () => {
      const args = [
        'analyze',
        run,
        '--backend',
        'cpu',
        '--batch-size',
        '16',
        '--quiet',
        '--out',
        tempDir(),
      ];
      const { code, err } = await cli(args);
      assert.equal(code, 1);
      assert.equal(err.trim().split('\n').length, 1, `one line: ${err}`);
      assert.match(
        err,
        /^error: the analysis ran out of memory on cpu \(memory access out of bounds\)/,
      );
      assert.match(err, /lower --micro-batch \(e\.g\. \d+\) or --batch-size/);
      assert.doesNotMatch(err, /\n\s+at /, 'no stack');
      const debug = await cli([...args, '--debug']);
      assert.equal(debug.code, 1);
      assert.match(debug.err, /RuntimeError: memory access out of bounds\n\s+at /);
    });
  });

  it('tells memory errors from others', () => {
    assert.ok(isOutOfMemory(new WebAssembly.RuntimeError('memory access out of bounds')));
    assert.ok(isOutOfMemory(new WebAssembly.RuntimeError('Aborted(OOM)')));
    assert.ok(isOutOfMemory(new RangeError('Array buffer allocation failed')));
    assert.ok(isOutOfMemory(new WasmHeapFullError("The wasm backend's memory is full")));
    assert.ok(!isOutOfMemory(new WebAssembly.RuntimeError('unreachable')));
    assert.ok(!isOutOfMemory(new Error('memory access out of bounds')), 'only wasm says that');
    assert.ok(!isOutOfMemory(new RangeError('Maximum call stack size exceeded')));
    const e = outOfMemoryError(new WebAssembly.RuntimeError('memory access out of bounds'), {
      backend: 'wasm',
      batchSize: 128,
      microBatch: 20,
    });
    assert.equal(e.exitCode, 1);
    assert.match(
      e.message,
      /at batch size 128 with micro-batches of 20 examples; lower --micro-batch \(e\.g\. 10\)/,
    );
  });
});
