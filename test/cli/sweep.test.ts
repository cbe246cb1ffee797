/**
 * `adahessian sweep` with seeds, per-optimizer base rates, a schedule, the AdaHessian ablation
 * (block size, power, f), --resume from the runs saved in --out, --json rows equal to the
 * printed table's, bits per character on text, and its refusals.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { mean, std, sweep, sweepTables, type SweepResult } from '../../src/cli/commands/sweep.js';
import { memoryIo } from '../../src/cli/output.js';
import { LOCK_FILE, acquireRunLock } from '../../src/cli/run-lock.js';
import { useBackend } from '../../src/index.js';
import { cli, tempDir } from './helpers.js';
import { disableNativeKernels } from '../../src/native/index.js';
import { onnxRuntimeUnavailableReason } from '../../src/native/onnx-runtime.js';

const quiet = () => memoryIo({ quiet: true });
const TINY = { model: 'mlp', trainSize: 48, testSize: 32, batchSize: 16, backend: 'cpu' } as const;

describe('sweep', () => {
  before(async () => {
    await useBackend('cpu');
  });

  it('mean and sample std', () => {
    assert.equal(mean([]), null);
    assert.equal(std([3]), 0);
    assert.equal(mean([1, 2, 6]), 3);
    assert.equal(std([1, 2, 6]), Math.sqrt((4 + 1 + 9) / 2));
  });

  it('seeds, base rates and a schedule: one row per cell, mean +- std of its runs, no leaks', async () => {
    const out = tempDir();
    const run = (seeds: number[]) =>
      sweep(
        {
          ...TINY,
          optimizers: [{ optimizer: 'adam', lr: 0.002 }, 'adahessian'],
          scales: [0.5, 3],
          blockSizes: [1, 4],
          hessianPowers: [0.5, 1],
          hessianEvery: [2],
          seeds,
          schedule: 'cosine',
          warmupSteps: 2,
          out,
        },
        quiet(),
      );
    // Kernels and their cached constants: every cell once (one seed; a seed changes no shape).
    await run([1]);
    const before = tf.memory().numTensors;
    const result = await run([1, 2]);
    assert.equal(tf.memory().numTensors, before);
    assert.deepEqual(
      result.rows.map((r) => [
        r.part,
        r.optimizer,
        r.lr,
        r.scale,
        r.blockSize,
        r.hessianPower,
        r.hessianEvery,
      ]),
      [
        ['learning-rate', 'adam', 0.001, 0.5, null, null, null],
        ['learning-rate', 'adam', 0.006, 3, null, null, null],
        ['learning-rate', 'adahessian', 0.075, 0.5, null, null, null],
        ['learning-rate', 'adahessian', 0.45, 3, null, null, null],
        ['adahessian', 'adahessian', 0.15, null, 1, 0.5, 2],
        ['adahessian', 'adahessian', 0.15, null, 4, 0.5, 2],
        ['adahessian', 'adahessian', 0.15, null, 1, 1, 2],
        ['adahessian', 'adahessian', 0.15, null, 4, 1, 2],
      ],
    );
    assert.equal(result.learningRate.length, 4 * 2);
    assert.equal(result.blockSize.length, 4 * 2);
    const cell = result.learningRate.filter((r) => r.optimizer === 'adam' && r.scale === 3);
    assert.deepEqual(
      cell.map((r) => r.seed),
      [1, 2],
    );
    const accs = cell.map((r) => r.testAccuracy!);
    assert.ok(
      new Set(accs.map(String)).size > 1 || cell.some((r) => r.trainLoss !== cell[0]!.trainLoss),
      'seeds differ',
    );
    assert.equal(result.rows[1]!.testAccuracyMean, mean(accs));
    assert.equal(result.rows[1]!.testAccuracyStd, std(accs));
    assert.equal(result.rows[1]!.seeds, 2);
    assert.equal(result.rows[1]!.testBitsPerCharMean, null, 'images: no bits per character');
    assert.equal(result.settings.schedule, 'cosine');
    // Several seeds: the plots shade mean +- std.
    assert.match(readFileSync(result.files.lrPlot!, 'utf8'), /<polygon class="band"/);
    assert.match(readFileSync(result.files.blockPlot!, 'utf8'), /<polygon class="band"/);
    const table = sweepTables(result);
    assert.match(table, /adam\s+0\.002\s+\d+\.\d \+- \d+\.\d\s+\d+\.\d \+- \d+\.\d/);
    assert.match(table, /^\s+4\s+0\.50\s+2\s+0\.15\s+2\s+\d+\.\d \+- \d+\.\d/m);
  });

  it('--resume reruns only the cells whose runs are missing or were made otherwise', async () => {
    const out = tempDir();
    const options = {
      ...TINY,
      optimizers: ['sgd' as const],
      scales: [1, 2],
      block: false,
      seeds: [4, 5],
      out,
    };
    const first = await sweep(options, quiet());
    const files = readdirSync(join(out, 'runs')).sort();
    assert.deepEqual(files, [
      'sgd-lr0.01-seed4.json',
      'sgd-lr0.01-seed5.json',
      'sgd-lr0.02-seed4.json',
      'sgd-lr0.02-seed5.json',
    ]);
    rmSync(join(out, 'runs', files[0]!));
    const changed = join(out, 'runs', files[1]!);
    const saved = JSON.parse(readFileSync(changed, 'utf8'));
    saved.config.epochs = 7; // made with other settings: not reused
    saved.run.testAccuracy = -1;
    writeFileSync(changed, JSON.stringify(saved));
    const io = memoryIo();
    const resumed = await sweep({ ...options, resume: true }, io);
    assert.match(io.err(), /2 of 4 runs reused/);
    assert.deepEqual(
      resumed.learningRate.map((r) => r.reused ?? false),
      [false, false, true, true],
    );
    const strip = (r: SweepResult) => r.rows.map(({ secondsPerEpochMean: _s, ...rest }) => rest);
    assert.deepEqual(strip(resumed), strip(first), 'the same numbers as the uninterrupted sweep');
  });

  it(
    '--resume reuses no run made on another kernels path (--step-graphs)',
    { skip: onnxRuntimeUnavailableReason() || false },
    async () => {
      const out = tempDir();
      const options = {
        ...TINY,
        native: true,
        optimizers: ['adam' as const],
        scales: [1],
        block: false,
        seeds: [4, 5],
        out,
      };
      try {
        await sweep({ ...options, stepGraphs: 'adahessian' }, quiet());
        const other = await sweep({ ...options, stepGraphs: 'all', resume: true }, quiet());
        assert.deepEqual(
          other.learningRate.map((r) => r.reused ?? false),
          [false, false],
        );
        const same = await sweep({ ...options, stepGraphs: 'all', resume: true }, quiet());
        assert.deepEqual(
          same.learningRate.map((r) => r.reused ?? false),
          [true, true],
        );
      } finally {
        disableNativeKernels();
      }
    },
  );

  it('--json prints the table rows; bad lists get one line naming the option', async () => {
    const out = tempDir();
    const args = [
      'sweep',
      '--model',
      'mlp',
      '--train-size',
      '32',
      '--test-size',
      '16',
      '--batch-size',
      '16',
    ];
    const more = ['--backend', 'cpu', '--no-block', '--scales', '1', '--out', out, '--quiet'];
    const run = await cli([
      ...args,
      ...more,
      '--optimizers',
      'sgd=0.05',
      '--seeds',
      '1,2',
      '--json',
    ]);
    assert.equal(run.code, 0, run.err);
    const doc = JSON.parse(run.out);
    assert.equal(doc.rows.length, 1);
    assert.equal(doc.rows[0].lr, 0.05);
    assert.equal(doc.rows[0].seeds, 2);
    const bad = [
      [
        ['--optimizers', 'adam=fast'],
        /--optimizers <list>' argument 'adam=fast' is invalid. entry 'adam=fast': expected a finite number > 0, got 'fast'/,
      ],
      [['--optimizers', 'lion=0.1'], /entry 'lion=0.1': expected an optimizer/],
      [['--optimizers', 'sgd,sgd=0.1'], /--optimizers lists sgd twice/],
      [['--seeds', '1,2,1'], /seed 1 is listed twice/],
      [['--seeds', '1', '--seed', '2'], /--seed and --seeds: give one of them/],
      [['--schedule', 'exp'], /--schedule <name>' argument 'exp' is invalid/],
    ] as const;
    for (const [extra, message] of bad) {
      const r = await cli([...args, ...more, ...extra]);
      assert.equal(r.code, 2, extra.join(' '));
      assert.match(r.err, message);
    }
  });

  it('text: test loss in bits per character (nats / ln 2) from a directory of files', async () => {
    const dir = join(tempDir(), 'texts');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a'), 'the cat sat on the mat. '.repeat(20));
    writeFileSync(join(dir, 'b'), 'a dog ate the log. '.repeat(20));
    const result = await sweep(
      {
        model: 'char-transformer',
        dataset: 'text',
        data: dir,
        seqLength: 8,
        trainSize: 16,
        testSize: 8,
        batchSize: 8,
        backend: 'cpu',
        optimizers: ['adamw', 'adahessian'],
        scales: [1],
        block: false,
        out: tempDir(),
      },
      quiet(),
    );
    for (const row of result.rows) {
      assert.ok(Number.isFinite(row.testLossMean));
      assert.equal(row.testBitsPerCharMean, row.testLossMean! / Math.LN2);
    }
    assert.match(sweepTables(result), /Test bits per character by learning-rate scale/);
  });

  it('one sweep per --out: a busy directory is refused; the lock goes when a sweep ends, even on an error', async () => {
    const out = tempDir();
    const args = ['sweep', '--model', 'mlp', '--train-size', '32', '--test-size', '16',
      '--epochs', '1', '--optimizers', 'sgd', '--scales', '1', '--no-block', '--backend', 'cpu',
      '--quiet', '--out', out]; // prettier-ignore
    const held = acquireRunLock(out, '--out'); // another run (this process) holds it
    const refused = await cli(args);
    assert.equal(refused.code, 2, refused.err);
    assert.match(refused.err, /^error: --out .* is in use by another run \(process \d+, started /);
    assert.equal(refused.err.trim().split('\n').length, 1);
    assert.ok(!existsSync(join(out, 'runs')), 'the refused sweep ran');
    held.release();
    const ran = await cli(args);
    assert.equal(ran.code, 0, ran.err);
    assert.ok(!existsSync(join(out, LOCK_FILE)), 'lock left after the sweep');
    const failed = await cli([...args, '--dataset', 'cifar10', '--data', tempDir()]);
    assert.equal(failed.code, 2, failed.err);
    assert.ok(!existsSync(join(out, LOCK_FILE)), 'lock left after a failed sweep');
  });
});
