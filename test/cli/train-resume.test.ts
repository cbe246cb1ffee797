/**
 * `adahessian train` through its function: outputs, no tensor leaks, and --resume reaching the
 * same weights bit for bit as an uninterrupted run, after an epoch end and mid-epoch, for
 * AdaHessian (moments, step, probe generator) and Adam (whose accumulated beta powers TF.js's
 * setWeights would recompute differently).
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { memoryIo } from '../../src/cli/output.js';
import { loadModel } from '../../src/cli/model-io.js';
import { train, type TrainOptions } from '../../src/cli/training.js';
import { useBackend } from '../../src/index.js';
import { cli, savedWeights, tempDir, TINY } from './helpers.js';

const BASE: TrainOptions = {
  model: 'mlp',
  trainSize: 64,
  testSize: 32,
  batchSize: 16,
  backend: 'cpu',
  seed: 7,
};

const quiet = () => memoryIo({ quiet: true });

function weightsOf(dir: string): Buffer {
  return savedWeights(dir);
}

function stepLossesOf(dir: string): number[] {
  return JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8')).stepLosses;
}

describe('train', () => {
  before(async () => {
    await useBackend('cpu');
  });

  it('writes metrics (JSON, CSV), a loadable TF.js model and a checkpoint, and leaks nothing', async () => {
    const out = tempDir();
    await train({ ...BASE, epochs: 1, out }, quiet()); // warm-up: kernels, wasm-free cpu init
    const before = tf.memory().numTensors;
    const result = await train(
      { ...BASE, epochs: 2, optimizer: 'adahessian', out, force: true },
      quiet(),
    );
    assert.equal(tf.memory().numTensors, before);
    assert.equal(result.metrics.length, 2);
    assert.equal(result.globalStep, 8);
    assert.equal(result.stepLosses.length, 8);
    assert.equal(result.interrupted, false);
    for (const m of result.metrics) {
      assert.ok(m.testAccuracy >= 0 && m.testAccuracy <= 1);
      assert.ok(Number.isFinite(m.trainLoss) && Number.isFinite(m.testLoss));
      assert.equal(m.steps, 4);
    }
    const csv = readFileSync(join(out, 'metrics.csv'), 'utf8').trim().split('\n');
    assert.equal(
      csv[0],
      'epoch,steps,trainLoss,trainAccuracy,testLoss,testAccuracy,trainSeconds,msPerStep,stepsPerSecond',
    );
    assert.equal(csv.length, 3);
    assert.ok(existsSync(join(out, 'checkpoint.json')));
    const { model, metadata } = await loadModel(out);
    try {
      assert.equal((metadata.config as { optimizer: string }).optimizer, 'adahessian');
      assert.equal(model.countParams(), 784 * 256 + 256 + 256 * 10 + 10);
    } finally {
      model.dispose();
    }
  });

  for (const optimizer of ['adahessian', 'adam'] as const) {
    it(`${optimizer}: 2 epochs straight = 1 epoch + --resume to 2, bit for bit`, async () => {
      const straight = tempDir();
      const split = tempDir();
      await train({ ...BASE, optimizer, epochs: 2, out: straight }, quiet());
      await train({ ...BASE, optimizer, epochs: 1, out: split }, quiet());
      const resumed = await train({ resume: split, epochs: 2 }, quiet());
      assert.equal(resumed.globalStep, 8);
      assert.deepEqual(stepLossesOf(split), stepLossesOf(straight));
      assert.ok(weightsOf(split).equals(weightsOf(straight)), 'final weights differ');
    });
  }

  it('adahessian: interrupted mid-epoch (signal) and resumed = uninterrupted, bit for bit', async () => {
    const straight = tempDir();
    const split = tempDir();
    const options = {
      ...BASE,
      optimizer: 'adahessian' as const,
      epochs: 2,
      hessianEvery: 2,
      blockSize: 4,
    };
    await train({ ...options, out: straight }, quiet());
    const controller = new AbortController();
    const first = await train(
      {
        ...options,
        out: split,
        signal: controller.signal,
        onStep: ({ globalStep }) => {
          if (globalStep === 6) controller.abort();
        },
      },
      quiet(),
    );
    assert.equal(first.interrupted, true);
    assert.equal(first.globalStep, 6);
    assert.ok(!existsSync(join(split, 'model')), 'an interrupted run wrote a final model');
    const resumed = await train({ resume: split }, quiet());
    assert.equal(resumed.interrupted, false);
    assert.deepEqual(stepLossesOf(split), stepLossesOf(straight));
    assert.ok(weightsOf(split).equals(weightsOf(straight)), 'final weights differ');
  });

  it('refuses to resume with different settings, naming the option', async () => {
    const dir = tempDir();
    await train({ ...BASE, epochs: 1, out: dir }, quiet());
    const { code, err } = await cli(['train', '--resume', dir, '--lr', '0.5', '--quiet']);
    assert.equal(code, 2);
    assert.match(
      err,
      /--lr 0\.5 differs from the checkpoint's 0\.15; a resumed run keeps its settings/,
    );
  });

  it('prints the result as JSON with --json', async () => {
    const dir = tempDir();
    const { code, out } = await cli(['train', ...TINY, '--epochs', '1', '--out', dir, '--json']);
    assert.equal(code, 0);
    const result = JSON.parse(out);
    assert.equal(result.config.optimizer, 'adahessian');
    assert.equal(result.metrics.length, 1);
    assert.equal(result.files.model, join(dir, 'model', 'model.json'));
  });
});
