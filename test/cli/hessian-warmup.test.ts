/**
 * --hessian-warmup-steps (train, sweep, train --optimizers): it reaches AdaHessian (D on every
 * one of the first n steps, then every f-th), only AdaHessian takes it, and when it is not given
 * the settings and run names are those of before it existed (so saved runs are still reused).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AdaHessian } from '../../src/optimizers/adahessian.js';
import { runKey } from '../../src/cli/commands/sweep.js';
import { buildOptimizer, resolveTrainConfig } from '../../src/cli/train-config.js';
import { cli, TINY } from './helpers.js';

describe('--hessian-warmup-steps', () => {
  it('AdaHessian computes D on the first n steps, then every f-th', () => {
    const config = resolveTrainConfig({ hessianEvery: 3, hessianWarmupSteps: 4 });
    const optimizer = buildOptimizer(config) as AdaHessian;
    try {
      const due = Array.from({ length: 12 }, (_, i) => optimizer.isHessianDue(i + 1));
      // Steps 1-4, then 5, 8, 11.
      assert.deepEqual(
        due.flatMap((d, i) => (d ? [i + 1] : [])),
        [1, 2, 3, 4, 5, 8, 11],
      );
    } finally {
      optimizer.dispose();
    }
    assert.equal(runKey(config), 'adahessian-lr0.15-seed1-b1-k1-f3-w4');
  });

  it('absent: the settings and run names of before; refused for other optimizers', async () => {
    const config = resolveTrainConfig({ hessianEvery: 2 });
    assert.equal('hessianWarmupSteps' in config, false);
    assert.equal(runKey(config), 'adahessian-lr0.15-seed1-b1-k1-f2');
    const r = await cli(['train', ...TINY, '--optimizer', 'adam', '--hessian-warmup-steps', '8']);
    assert.equal(r.code, 2);
    assert.match(r.err, /--hessian-warmup-steps applies only to --optimizer adahessian/);
    const bad = await cli(['train', ...TINY, '--hessian-warmup-steps', '-1']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--hessian-warmup-steps <n>' argument '-1' is invalid/);
  });

  it('train records it in its checkpoint; --optimizers gives it to AdaHessian only', async () => {
    const args = [...TINY, '--epochs', '1', '--hessian-every', '2', '--hessian-warmup-steps', '2'];
    const one = await cli(['train', ...args, '--json']);
    assert.equal(one.code, 0, one.err);
    assert.equal(JSON.parse(one.out).config.hessianWarmupSteps, 2);
    const many = await cli(['train', ...args, '--optimizers', 'sgd,adahessian', '--json']);
    assert.equal(many.code, 0, many.err);
    const runs = JSON.parse(many.out).runs as { optimizer: string; testAccuracy: number }[];
    assert.equal(runs[1]!.testAccuracy, JSON.parse(one.out).metrics[0].testAccuracy);
  });
});
