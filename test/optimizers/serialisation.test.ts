/**
 * Saving and restoring like TF.js's own optimizers: registered class, getConfig/fromConfig,
 * getWeights/setWeights of the whole state. 20 steps straight = 10, save, restore, 10 more.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { AdaHessian, AdamW } from '../../src/index.js';
import { onBackend, TEST_BACKENDS } from '../helpers.js';

const BATCH = 8;
const STEPS = 20;

function buildModel(seed: number): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({
        units: 6,
        inputShape: [5],
        activation: 'tanh',
        kernelInitializer: tf.initializers.glorotUniform({ seed }),
      }),
      tf.layers.dense({
        units: 2,
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
      }),
    ],
  });
}

function data(): { x: tf.Tensor; y: tf.Tensor } {
  const x = tf.randomNormal([BATCH * STEPS, 5], 0, 1, 'float32', 11);
  const y = tf.tidy(() => tf.concat([tf.sum(x, 1, true), tf.sin(tf.slice(x, [0, 0], [-1, 1]))], 1));
  return { x, y };
}

async function fitSteps(
  model: tf.LayersModel,
  x: tf.Tensor,
  y: tf.Tensor,
  from: number,
  to: number,
): Promise<void> {
  const xs = x.slice([from * BATCH, 0], [(to - from) * BATCH, -1]);
  const ys = y.slice([from * BATCH, 0], [(to - from) * BATCH, -1]);
  await model.fit(xs, ys, { epochs: 1, batchSize: BATCH, shuffle: false, verbose: 0 });
  tf.dispose([xs, ys]);
}

const weightsOf = (model: tf.LayersModel) =>
  model.getWeights().map((w) => Array.from(w.dataSync()));

/** Settings that exercise every piece of state: delayed Hessian, warm-up, 2 probes, decay. */
const CONFIG = {
  seed: 1234,
  hessianEvery: 3,
  hessianWarmupSteps: 2,
  samples: 2,
  weightDecay: 1e-3,
  learningRate: 0.05,
};

for (const backend of TEST_BACKENDS) {
  describe(`optimizer serialisation on ${backend}`, () => {
    before(() => onBackend(backend));

    it('AdaHessian and AdamW are registered with tf.serialization', () => {
      const map = tf.serialization.SerializationMap.getMap().classNameMap;
      assert.ok(map['AdaHessian'] != null && map['AdamW'] != null);
      const opt = new AdaHessian({
        ...CONFIG,
        spatialAveraging: { 2: { blockSize: 4 }, 4: 'none' },
      });
      const copy = AdaHessian.fromConfig(AdaHessian, opt.getConfig()) as AdaHessian;
      assert.deepEqual(copy.getConfig(), opt.getConfig());
      assert.equal(opt.getClassName(), 'AdaHessian');
      const w = new AdamW({ learningRate: 0.01, weightDecay: 0.1 });
      assert.deepEqual(AdamW.fromConfig(AdamW, w.getConfig()).getConfig(), w.getConfig());
      [opt, copy, w].forEach((o) => o.dispose());
    });

    it('the same seed gives the same weights bit for bit; another seed does not', async () => {
      const { x, y } = data();
      const run = async (seed: number) => {
        const model = buildModel(1);
        model.compile({ optimizer: new AdaHessian({ ...CONFIG, seed }), loss: 'meanSquaredError' });
        await fitSteps(model, x, y, 0, 6);
        const w = weightsOf(model);
        model.optimizer.dispose();
        model.dispose();
        return w;
      };
      const a = await run(7);
      assert.deepEqual(await run(7), a);
      assert.notDeepEqual(await run(8), a);
      tf.dispose([x, y]);
    });

    for (const [name, make] of [
      ['AdaHessian', () => new AdaHessian(CONFIG)],
      ['AdamW', () => new AdamW({ learningRate: 0.01, weightDecay: 0.05 })],
    ] as const) {
      it(`${name}: 20 steps straight = 10 steps, getWeights, fresh optimizer and model, setWeights, 10 more`, async () => {
        const { x, y } = data();
        const straight = buildModel(1);
        straight.compile({ optimizer: make(), loss: 'meanSquaredError' });
        await fitSteps(straight, x, y, 0, STEPS);

        const first = buildModel(1);
        const firstOpt = make();
        first.compile({ optimizer: firstOpt, loss: 'meanSquaredError' });
        await fitSteps(first, x, y, 0, STEPS / 2);
        // Copy everything out, then throw the originals away.
        const modelWeights = first.getWeights().map((w) => w.clone());
        const optState = (await firstOpt.getWeights()).map((s) => ({
          name: s.name,
          tensor: s.tensor.clone(),
        }));
        const config = firstOpt.getConfig();
        firstOpt.dispose();
        first.dispose();

        const second = buildModel(99); // different initial weights, overwritten below
        second.setWeights(modelWeights);
        const cls = tf.serialization.SerializationMap.getMap().classNameMap[name]!;
        const secondOpt = cls[1](cls[0], config) as tf.Optimizer;
        await secondOpt.setWeights(optState);
        second.compile({ optimizer: secondOpt, loss: 'meanSquaredError' });
        await fitSteps(second, x, y, STEPS / 2, STEPS);
        assert.equal(secondOpt.iterations, STEPS);
        assert.deepEqual(weightsOf(second), weightsOf(straight));

        tf.dispose([x, y, ...modelWeights, ...optState.map((s) => s.tensor)]);
        straight.optimizer.dispose();
        straight.dispose();
        secondOpt.dispose();
        second.dispose();
      });
    }

    it('AdaHessian round-trips through model.save({ includeOptimizer: true }) and tf.loadLayersModel', async () => {
      const { x, y } = data();
      const straight = buildModel(1);
      straight.compile({ optimizer: new AdaHessian(CONFIG), loss: 'meanSquaredError' });
      await fitSteps(straight, x, y, 0, STEPS);

      const first = buildModel(1);
      first.compile({ optimizer: new AdaHessian(CONFIG), loss: 'meanSquaredError' });
      await fitSteps(first, x, y, 0, STEPS / 2);
      let saved: tf.io.ModelArtifacts | undefined;
      await first.save(
        tf.io.withSaveHandler(async (artifacts) => {
          saved = artifacts;
          return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
        }),
        { includeOptimizer: true },
      );
      first.optimizer.dispose();
      first.dispose();

      const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved!));
      // tf.Optimizer's Symbol.hasInstance makes every optimizer an 'instanceof' any subclass:
      // compare the class itself.
      assert.equal(loaded.optimizer.constructor, AdaHessian);
      assert.equal(loaded.optimizer.iterations, STEPS / 2);
      await fitSteps(loaded, x, y, STEPS / 2, STEPS);
      assert.deepEqual(weightsOf(loaded), weightsOf(straight));
      tf.dispose([x, y]);
      [straight, loaded].forEach((m) => (m.optimizer.dispose(), m.dispose()));
    });

    it('setWeights refuses state that AdaHessian did not save', async () => {
      const opt = new AdaHessian();
      const iter = tf.scalar(3, 'int32');
      const other = tf.scalar(1);
      await assert.rejects(
        opt.setWeights([
          { name: 'iter', tensor: iter },
          { name: 'm', tensor: other },
        ]),
        /expected 'hessianUpdates' and 'probeGenerator'/,
      );
      tf.dispose([iter, other]);
      opt.dispose();
    });
  });
}
