/**
 * `train --seeds/--optimizers`: one run per optimizer and seed, each equal to the single run
 * with the same settings; rows of mean +- std (the same with --json as in the table); every
 * run in its own --out subdirectory, resumed per run (interrupted, grown, or finished); bad
 * lists refused in one line before anything is written.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { trainManyTable } from '../../src/cli/commands/train.js';
import { memoryIo } from '../../src/cli/output.js';
import { mean, std } from '../../src/cli/seed-stats.js';
import { trainMany, type TrainManyResult } from '../../src/cli/train-many.js';
import { useBackend } from '../../src/index.js';
import { cli, tempDir, TINY } from './helpers.js';

const SETTINGS = {
  model: 'mlp',
  trainSize: 64,
  testSize: 32,
  batchSize: 16,
  epochs: 1,
  backend: 'cpu',
  schedule: 'cosine',
  warmupSteps: 2,
} as const;
const PLAN = {
  ...SETTINGS,
  optimizers: [{ optimizer: 'sgd' as const, lr: 0.05 }, { optimizer: 'adahessian' as const }],
  seeds: [1, 2],
};
/** Everything but the times, which differ from run to run. */
const numbers = (r: TrainManyResult) => ({
  rows: r.rows.map(({ secondsPerEpochMean: _s, ...rest }) => rest),
  runs: r.runs.map(({ secondsPerEpoch: _s, reused: _r, dir: _d, ...rest }) => rest),
});

describe('train --seeds --optimizers', () => {
  before(async () => {
    await useBackend('cpu');
  });

  it('one run per optimizer and seed, each the single run; rows of mean +- std; no leaks', async () => {
    const args = [...TINY, '--epochs', '1', '--schedule', 'cosine', '--warmup-steps', '2'];
    const many = await cli(['train', ...args, '--optimizers', 'sgd=0.05,adahessian', '--seeds', '1,2', '--json']); // prettier-ignore
    assert.equal(many.code, 0, many.err);
    const doc = JSON.parse(many.out) as TrainManyResult;
    assert.deepEqual(
      doc.runs.map((r) => [r.optimizer, r.lr, r.seed]),
      [
        ['sgd', 0.05, 1],
        ['sgd', 0.05, 2],
        ['adahessian', 0.15, 1],
        ['adahessian', 0.15, 2],
      ],
    );
    // Each run is exactly the single run with its optimizer, rate and seed.
    for (const run of doc.runs.filter((r) => r.seed === 2)) {
      const single = await cli(['train', ...args, '--optimizer', run.optimizer, '--lr', String(run.lr), '--seed', String(run.seed), '--json']); // prettier-ignore
      const last = JSON.parse(single.out).metrics.at(-1);
      assert.equal(run.testAccuracy, last.testAccuracy, `${run.optimizer} seed ${run.seed}`);
      assert.equal(run.trainLoss, last.trainLoss, `${run.optimizer} seed ${run.seed}`);
    }
    assert.deepEqual(
      doc.rows.map((r) => [r.optimizer, r.lr, r.seeds]),
      [
        ['sgd', 0.05, 2],
        ['adahessian', 0.15, 2],
      ],
    );
    const accs = doc.runs.filter((r) => r.optimizer === 'sgd').map((r) => r.testAccuracy!);
    assert.equal(doc.rows[0]!.testAccuracyMean, mean(accs));
    assert.equal(doc.rows[0]!.testAccuracyStd, std(accs));
    assert.deepEqual(doc.settings.seeds, [1, 2]);
    assert.equal(doc.settings.schedule, 'cosine');
    // The table shows the same rows.
    const table = trainManyTable(doc);
    for (const r of doc.rows) {
      const acc = `${(r.testAccuracyMean! * 100).toFixed(1)} +- ${(r.testAccuracyStd! * 100).toFixed(1)}`;
      assert.match(table, new RegExp(`^${r.optimizer}\\s+${r.lr}\\s+2\\s+${acc.replace(/\+/g, '\\+')}\\s+${r.testLossMean!.toFixed(4)}\\s+${r.trainLossMean!.toFixed(4)}`, 'm')); // prettier-ignore
    }
    const before = tf.memory().numTensors;
    await trainMany({ ...PLAN, seeds: [3] }, memoryIo({ quiet: true }));
    assert.equal(tf.memory().numTensors, before);
  });

  it('--out: a directory per run; --resume continues the interrupted run and reuses the finished', async () => {
    const whole = await trainMany(PLAN, memoryIo({ quiet: true }));
    const out = tempDir();
    // Ctrl-C as the second run starts: it stops after its first step, with a checkpoint.
    const controller = new AbortController();
    const io = memoryIo();
    const write = io.stderr.write;
    io.stderr.write = (s: string) => {
      if (s.startsWith('run 2/4')) controller.abort();
      return write(s);
    };
    const stopped = await trainMany({ ...PLAN, out, signal: controller.signal }, io);
    assert.equal(stopped.interrupted, true);
    assert.equal(stopped.runs.length, 1);
    assert.match(io.err(), new RegExp(`continue with: adahessian train --resume ${out}`));
    assert.deepEqual(readdirSync(out).sort(), ['sgd-lr0.05-seed1', 'sgd-lr0.05-seed2', 'train-runs.json']); // prettier-ignore
    const resumed = await cli(['train', '--resume', out, '--quiet', '--json']);
    assert.equal(resumed.code, 0, resumed.err);
    const doc = JSON.parse(resumed.out) as TrainManyResult;
    assert.deepEqual(numbers(doc), numbers(whole), 'the same numbers as the uninterrupted runs');
    assert.deepEqual(
      doc.runs.map((r) => r.reused ?? false),
      [true, false, false, false],
    );
    // Finished: all reused. One run removed: only it runs again.
    rmSync(join(out, 'adahessian-lr0.15-seed1-b1-k1-f1'), { recursive: true });
    const again = await trainMany({ resume: out }, memoryIo({ quiet: true }));
    assert.deepEqual(
      again.runs.map((r) => r.reused ?? false),
      [true, true, false, true],
    );
    assert.deepEqual(numbers(again), numbers(whole));
    // A second start on the same directory is refused; a single run's settings cannot change.
    const refused = await cli(['train', ...TINY, '--seeds', '1,2', '--out', out]);
    assert.equal(refused.code, 2);
    assert.match(
      refused.err,
      /holds a set of runs \(train-runs\.json\); continue it with --resume/,
    );
    const changed = await cli(['train', '--resume', out, '--batch-size', '8', '--quiet']);
    assert.equal(changed.code, 2);
    assert.match(changed.err, /--batch-size 8 differs from the runs in .* \(16\)/);
  });

  it('bad lists: one line naming the problem, nothing written', async () => {
    const out = join(tempDir(), 'never');
    const bad = [
      [['--optimizers', 'lion'], /entry 'lion': expected an optimizer/],
      [['--optimizers', 'adam=fast'], /entry 'adam=fast': expected a finite number > 0/],
      [['--optimizers', 'adam=-1'], /entry 'adam=-1': expected a finite number > 0/],
      [['--optimizers', 'adam,adam=0.01'], /--optimizers lists adam twice/],
      [['--seeds', ''], /--seeds <list>' argument '' is invalid. expected a comma-separated list/],
      [['--seeds', '1,2,1'], /seed 1 is listed twice/],
      [['--seeds', '1,2', '--seed', '3'], /--seed and --seeds: give one of them/],
      [['--optimizers', 'adam', '--lr', '0.1'], /--optimizers and --optimizer or --lr: give one/],
      [['--optimizers', 'adam', '--hessian-every', '2'], /--hessian-every applies only to/],
    ] as const;
    for (const [extra, message] of bad) {
      const r = await cli(['train', ...TINY, '--out', out, ...extra]);
      assert.equal(r.code, 2, extra.join(' '));
      assert.match(r.err, message);
      assert.equal(r.err.split('\n').filter((l) => l.startsWith('error')).length, 1);
      assert.equal(existsSync(out), false, extra.join(' '));
    }
  });

  it('--resume with --seeds or --optimizers on what is not a set of runs says what is there', async () => {
    const single = tempDir();
    assert.equal((await cli(['train', ...TINY, '--epochs', '1', '--out', single])).code, 0);
    const cases = [
      [single, /--resume .* continues the one run checkpointed there, with its settings; drop --seeds\.$/], // prettier-ignore
      [tempDir(), /--resume .*: no checkpoint\.json or train-runs\.json there/],
      [join(tempDir(), 'never'), /--resume .*never does not exist\.$/],
    ] as const;
    for (const [dir, message] of cases) {
      const r = await cli(['train', '--resume', dir, '--seeds', '1,2', '--quiet']);
      assert.equal(r.code, 2, r.err);
      assert.match(r.err.trim(), message);
    }
  });
});
