/**
 * analyze, bench, sweep and demo on tiny settings through their functions (fast), and the
 * command line as a user runs it: a spawned `npx adahessian ... --json` process.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { analyze } from '../../src/cli/commands/analyze.js';
import { bench, benchTable } from '../../src/cli/commands/bench.js';
import { comparisonTable, demo } from '../../src/cli/commands/demo.js';
import { sweep, sweepTables } from '../../src/cli/commands/sweep.js';
import { memoryIo } from '../../src/cli/output.js';
import { train } from '../../src/cli/training.js';
import { useBackend } from '../../src/index.js';
import { spawnCli, tempDir } from './helpers.js';

const quiet = () => memoryIo({ quiet: true });

function assertSvg(path: string): string {
  const svg = readFileSync(path, 'utf8');
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>\s*$/);
  return svg;
}

describe('commands on tiny settings', () => {
  before(async () => {
    await useBackend('cpu');
  });

  it('analyze: top eigenvalues, trace, density, per layer; JSON and SVG plots', async () => {
    const run = tempDir();
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
    const out = tempDir();
    const before = tf.memory().numTensors;
    const result = await analyze(
      {
        model: run,
        backend: 'cpu',
        batchSize: 16,
        topN: 2,
        eigenIters: 10,
        traceIters: 5,
        densityIters: 8,
        out,
      },
      quiet(),
    );
    assert.equal(tf.memory().numTensors, before);
    assert.equal(result.dataset, 'fashion-mnist-slice'); // read from the model's metadata
    const { report } = result;
    assert.equal(report.topEigenvalues!.eigenvalues.length, 2);
    assert.ok(report.topEigenvalues!.eigenvalues[0]! >= report.topEigenvalues!.eigenvalues[1]!);
    assert.ok(Number.isFinite(report.trace!.trace));
    assert.deepEqual(
      report.perLayer!.blocks.map((b) => b.size),
      [784 * 256 + 256, 256 * 10 + 10],
    );
    const saved = JSON.parse(readFileSync(result.files.json, 'utf8'));
    assert.deepEqual(saved.report.topEigenvalues.eigenvalues, report.topEigenvalues!.eigenvalues);
    assertSvg(result.files.densityPlot!);
    assertSvg(result.files.layerPlot!);
  });

  it("bench: every configuration timed, ratios to SGD and Adam, the paper's columns", async () => {
    const result = await bench(
      {
        model: 'mlp',
        batchSize: 16,
        steps: 2,
        rounds: 2,
        warmup: 1,
        hessianEvery: [1, 3],
        backend: 'cpu',
      },
      quiet(),
    );
    assert.deepEqual(
      result.rows.map((r) => r.name),
      ['sgd', 'adam', 'adamw', 'adahessian f=1', 'adahessian f=3'],
    );
    for (const r of result.rows) {
      assert.equal(r.rounds.length, 2);
      assert.ok(r.msPerStep > 0);
    }
    const sgd = result.rows[0]!;
    const adam = result.rows[1]!;
    assert.equal(sgd.xSgd, 1);
    assert.equal(adam.xAdam, 1);
    const f3 = result.rows[4]!;
    assert.equal(f3.xAdam, f3.msPerStep / adam.msPerStep);
    assert.equal(f3.paperXAdam, 1.42);
    assert.equal(f3.theoryXSgd, 1 + 1 / 3);
    assert.deepEqual(result.targets, []); // targets are for the small CNN
    const table = benchTable(result);
    assert.match(
      table,
      /optimizer\s+ms\/step\s+x SGD\s+x Adam\s+theory x SGD\s+paper x SGD\s+paper x Adam/,
    );
    assert.match(table, /adahessian f=3 .* 1\.33\s+1\.47\s+1\.42$/m);
  });

  it('sweep: accuracy by learning-rate scale and block size, tables and plots', async () => {
    const out = tempDir();
    const result = await sweep(
      {
        model: 'mlp',
        trainSize: 32,
        testSize: 16,
        batchSize: 16,
        optimizers: ['sgd', 'adahessian'],
        scales: [1, 1e36],
        blockSizes: [1, 8],
        backend: 'cpu',
        out,
      },
      quiet(),
    );
    assert.deepEqual(
      result.learningRate.map((r) => [r.optimizer, r.scale]),
      [
        ['sgd', 1],
        ['sgd', 1e36],
        ['adahessian', 1],
        ['adahessian', 1e36],
      ],
    );
    assert.deepEqual(
      result.blockSize.map((r) => r.blockSize),
      [1, 8],
    );
    for (const r of [...result.learningRate, ...result.blockSize]) {
      assert.ok(
        r.diverged ? r.testAccuracy === null : r.testAccuracy! >= 0 && r.testAccuracy! <= 1,
      );
    }
    // SGD at 1e36 times its usual rate overflows float32 and is reported as diverged.
    assert.equal(result.learningRate[1]!.diverged, true);
    const tables = sweepTables(result);
    assert.match(tables, /sgd\s+0\.01\s+\d+\.\d\s+diverged/);
    assert.match(tables, /AdaHessian by block size/);
    assert.match(assertSvg(result.files.lrPlot!), /class="missing"/); // the diverged point
    assertSvg(result.files.blockPlot!);
    assert.equal(JSON.parse(readFileSync(result.files.json!, 'utf8')).learningRate.length, 4);
  });

  it('demo: both optimizers, comparison table, analysis of both, HTML report with plots', async () => {
    const out = tempDir();
    const result = await demo(
      {
        epochs: 1,
        trainSize: 64,
        testSize: 32,
        batchSize: 32,
        analysisBatch: 16,
        analysis: { topN: 1, eigenIters: 5, traceIters: 3, densityIters: 5 },
        backend: 'wasm',
        out,
      },
      quiet(),
    );
    assert.deepEqual(
      result.runs.map((r) => r.optimizer),
      ['adam', 'adahessian'],
    );
    assert.equal(result.runs[0]!.xAdam, 1);
    assert.deepEqual(
      result.runs.map((r) => r.lr),
      [0.001, 0.15],
    );
    for (const r of result.runs) {
      assert.equal(r.stepLosses.length, 2);
      assert.ok(r.analysis.report.topEigenvalues!.eigenvalues.length === 1);
    }
    assert.match(comparisonTable(result.runs), /^adahessian\s+0\.15\s+\d+\.\d\d/m);
    // --json prints the result: its rows are the table's, number for number.
    const table = comparisonTable(result.runs).split('\n').slice(2);
    assert.equal(result.rows.length, 2);
    result.rows.forEach((r, i) => {
      const run = result.runs[i]!;
      assert.equal(r.topEigenvalue, run.analysis.report.topEigenvalues!.eigenvalues[0]);
      assert.equal(r.trace, run.analysis.report.trace!.trace);
      const cells = [r.testAccuracy * 100, r.testLoss, r.trainLoss, r.msPerStep, r.xAdam];
      const shown = [2, 4, 4, 1, 2].map((d, j) => cells[j]!.toFixed(d));
      shown.push(r.topEigenvalue!.toFixed(2), r.trace!.toFixed(1));
      assert.deepEqual(table[i]!.trim().split(/\s+/), [r.optimizer, String(r.lr), ...shown]);
    });
    const html = readFileSync(result.files.report, 'utf8');
    assert.match(html, /^<!DOCTYPE html>/);
    assert.equal((html.match(/<svg /g) ?? []).length, 6); // loss, accuracy, 2 x (density, layers)
    assert.match(html, /Hessian of the adahessian model/);
    for (const f of [
      'loss.svg',
      'accuracy.svg',
      'analysis-adam/spectral-density.svg',
      'analysis-adahessian/analysis.json',
    ]) {
      assert.ok(existsSync(join(out, f)), f);
    }
  });
});

describe('npx adahessian as a child process', () => {
  it('train --json prints one JSON document on stdout and exits 0', async () => {
    const out = tempDir();
    const run = await spawnCli([
      'train',
      '--model',
      'mlp',
      '--train-size',
      '32',
      '--test-size',
      '16',
      '--batch-size',
      '16',
      '--epochs',
      '1',
      '--backend',
      'cpu',
      '--out',
      out,
      '--json',
    ]);
    assert.equal(run.code, 0, run.err);
    const result = JSON.parse(run.out);
    assert.equal(result.config.model, 'mlp');
    assert.equal(result.metrics.length, 1);
    assert.ok(existsSync(result.files.model));
    assert.ok(!run.err.includes('\u001b['), 'escape codes on a non-terminal');
  });

  it('a bad option exits 2 with the message on stderr and nothing on stdout', async () => {
    const run = await spawnCli(['bench', '--backend', 'gpu']);
    assert.equal(run.code, 2);
    assert.equal(run.out, '');
    assert.match(run.err, /argument 'gpu' is invalid\. Allowed choices are cpu, wasm, tensorflow/);
  });
});
