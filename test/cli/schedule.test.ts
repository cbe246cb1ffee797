/**
 * The training loop follows --schedule and --warmup-steps: step by step (SGD with a doubled
 * rate and a two-step warm-up takes the same first step as SGD at the plain rate), across a
 * --resume (bit for bit), and with clear refusals.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { memoryIo } from '../../src/cli/output.js';
import { train, type TrainOptions } from '../../src/cli/training.js';
import { useBackend } from '../../src/index.js';
import { cli, tempDir, TINY } from './helpers.js';

const BASE: TrainOptions = {
  model: 'mlp',
  trainSize: 64,
  testSize: 32,
  batchSize: 16,
  backend: 'cpu',
  seed: 5,
  optimizer: 'sgd',
};
const quiet = () => memoryIo({ quiet: true });

describe('train with a learning-rate schedule', () => {
  before(async () => {
    await useBackend('cpu');
  });

  it('warm-up: step t uses lr * t / warmupSteps', async () => {
    const plain = await train({ ...BASE, epochs: 1, lr: 0.05 }, quiet());
    const warm = await train({ ...BASE, epochs: 1, lr: 0.1, warmupSteps: 2 }, quiet());
    // Loss k is measured before step k's update: losses 1 and 2 agree (the first step used
    // 0.1 * 1/2 = 0.05 in both), loss 3 differs (the second step used 0.1 against 0.05).
    assert.equal(warm.stepLosses[0], plain.stepLosses[0]);
    assert.equal(warm.stepLosses[1], plain.stepLosses[1]);
    assert.notEqual(warm.stepLosses[2], plain.stepLosses[2]);
    assert.equal(warm.config.warmupSteps, 2);
    assert.equal(warm.config.schedule, 'constant');
  });

  it('a cosine run interrupted mid-epoch and resumed ends with the same losses', async () => {
    const settings = {
      ...BASE,
      optimizer: 'adam' as const,
      epochs: 2,
      schedule: 'cosine' as const,
      warmupSteps: 3,
    };
    const whole = await train(settings, quiet());
    const out = tempDir();
    const controller = new AbortController();
    await train(
      {
        ...settings,
        out,
        signal: controller.signal,
        onStep: ({ globalStep }) => globalStep === 5 && controller.abort(),
      },
      quiet(),
    );
    const resumed = await train({ resume: out }, quiet());
    assert.deepEqual(resumed.stepLosses, whole.stepLosses);
    assert.equal(resumed.config.schedule, 'cosine');
  });

  it('refuses an unknown schedule, a negative warm-up and --epochs changed under cosine', async () => {
    const bad = await cli(['train', ...TINY, '--schedule', 'linear']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--schedule <name>' argument 'linear' is invalid/);
    const negative = await cli(['train', ...TINY, '--warmup-steps', '-1']);
    assert.equal(negative.code, 2);
    assert.match(negative.err, /--warmup-steps/);
    const out = tempDir();
    const first = await cli([
      'train',
      ...TINY,
      '--epochs',
      '1',
      '--schedule',
      'cosine',
      '--out',
      out,
    ]);
    assert.equal(first.code, 0, first.err);
    const more = await cli(['train', '--resume', out, '--epochs', '2', '--quiet']);
    assert.equal(more.code, 2);
    assert.match(more.err, /--epochs cannot change on --resume with --schedule cosine/);
  });
});
