import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  buildMlp,
  buildSmallCnn,
  modelByName,
  MODEL_NAMES,
  type ModelName,
  type ModelOptions,
} from '../../src/index.js';
import { onBackend, TEST_BACKENDS } from '../helpers.js';

/** Weights of a dense layer: kernel in*out plus bias out. */
const dense = (inputs: number, units: number) => inputs * units + units;
/** Weights of a 2-D convolution: kh*kw*cin*filters plus bias filters. */
const conv = (k: number, cin: number, filters: number) => k * k * cin * filters + filters;

/** The weight values, in layer order, as plain arrays (disposes what it reads). */
function weightValues(model: tf.LayersModel): Float32Array[] {
  return model.getWeights().map((w) => w.dataSync() as Float32Array);
}

function disposeModel(model: tf.LayersModel): void {
  model.dispose();
}

for (const backend of TEST_BACKENDS) {
  describe(`model zoo on ${backend}`, () => {
    before(() => onBackend(backend));

    it('mlp: logits of shape [n, classes] and 784*256+256 + 256*10+10 parameters', () => {
      const model = buildMlp({ seed: 1 });
      assert.equal(model.countParams(), dense(28 * 28, 256) + dense(256, 10));
      assert.equal(model.countParams(), 203530);
      const x = tf.zeros([3, 28, 28, 1]);
      const y = model.predict(x) as tf.Tensor;
      assert.deepEqual(y.shape, [3, 10]);
      tf.dispose([x, y]);
      disposeModel(model);
    });

    it('mlp: honours inputShape, hidden and classes', () => {
      const model = buildMlp({ inputShape: [5, 3], hidden: 7, classes: 4, seed: 2 });
      assert.equal(model.countParams(), dense(15, 7) + dense(7, 4));
      const x = tf.ones([2, 5, 3]);
      const y = model.predict(x) as tf.Tensor;
      assert.deepEqual(y.shape, [2, 4]);
      tf.dispose([x, y]);
      disposeModel(model);
    });

    it('mlp: outputs logits, not probabilities (rows need not sum to 1)', () => {
      const model = buildMlp({ seed: 3 });
      const x = tf.randomUniform([4, 28, 28, 1], 0, 1, 'float32', 4);
      const y = model.predict(x) as tf.Tensor;
      const sums = tf.sum(y, 1);
      const values = y.dataSync();
      assert.ok(
        Array.from(values).some((v) => v < 0),
        'a softmax output would have no negative entries',
      );
      assert.ok(Array.from(sums.dataSync()).some((s) => Math.abs(s - 1) > 1e-3));
      tf.dispose([x, y, sums]);
      disposeModel(model);
    });

    it('small-cnn: logits of shape [n, classes] and the hand-counted parameters', () => {
      const model = buildSmallCnn({ seed: 1 });
      // 28x28 -> pool -> 14x14 -> pool -> 7x7, 32 channels flattened.
      const expected = conv(3, 1, 16) + conv(3, 16, 32) + dense(7 * 7 * 32, 128) + dense(128, 10);
      assert.equal(model.countParams(), expected);
      assert.equal(model.countParams(), 206922);
      const x = tf.zeros([2, 28, 28, 1]);
      const y = model.predict(x) as tf.Tensor;
      assert.deepEqual(y.shape, [2, 10]);
      tf.dispose([x, y]);
      disposeModel(model);
    });

    it('small-cnn: handles CIFAR-sized colour input (32x32x3) and odd sizes (pooling floors)', () => {
      const cifar = buildSmallCnn({ inputShape: [32, 32, 3], classes: 10, seed: 1 });
      assert.equal(
        cifar.countParams(),
        conv(3, 3, 16) + conv(3, 16, 32) + dense(8 * 8 * 32, 128) + dense(128, 10),
      );
      const odd = buildSmallCnn({ inputShape: [15, 9, 2], classes: 3, seed: 1 });
      // 15x9 -> 7x4 -> 3x2
      assert.equal(
        odd.countParams(),
        conv(3, 2, 16) + conv(3, 16, 32) + dense(3 * 2 * 32, 128) + dense(128, 3),
      );
      const x = tf.ones([1, 15, 9, 2]);
      const y = odd.predict(x) as tf.Tensor;
      assert.deepEqual(y.shape, [1, 3]);
      tf.dispose([x, y]);
      disposeModel(cifar);
      disposeModel(odd);
    });
  });
}

/** What each model needs beyond a seed (the transformer has no default vocabulary). */
const REQUIRED: Record<ModelName, ModelOptions> = {
  mlp: {},
  'small-cnn': {},
  resnet20: {},
  'char-transformer': { vocabSize: 7, contextLength: 5 },
};

describe('model zoo: seeds', () => {
  before(() => onBackend('cpu'));

  for (const name of MODEL_NAMES) {
    it(`${name}: the same seed gives the same weights bit for bit`, () => {
      const a = modelByName(name, { ...REQUIRED[name], seed: 42 });
      const b = modelByName(name, { ...REQUIRED[name], seed: 42 });
      const wa = weightValues(a);
      const wb = weightValues(b);
      assert.equal(wa.length, wb.length);
      for (let i = 0; i < wa.length; i++) {
        assert.deepEqual(
          new Uint32Array(wa[i]!.buffer),
          new Uint32Array(wb[i]!.buffer),
          `weight ${i} differs`,
        );
      }
      disposeModel(a);
      disposeModel(b);
    });

    it(`${name}: different seeds give different kernels; biases and BN offsets start at zero`, () => {
      const a = modelByName(name, { ...REQUIRED[name], seed: 1 });
      const b = modelByName(name, { ...REQUIRED[name], seed: 2 });
      const wa = weightValues(a);
      const wb = weightValues(b);
      a.weights.forEach((w, i) => {
        if (/kernel|embeddings/.test(w.name)) {
          assert.notDeepEqual(wa[i], wb[i], `${w.name} is the same for seeds 1 and 2`);
          assert.ok(
            wa[i]!.some((v) => v !== 0),
            `${w.name} is all zeros`,
          );
        } else if (/gamma|moving_variance/.test(w.name)) {
          assert.ok(
            wa[i]!.every((v) => v === 1),
            `${w.name} should start at one`,
          );
        } else {
          assert.ok(
            wa[i]!.every((v) => v === 0),
            `${w.name} should start at zero`,
          );
        }
      });
      disposeModel(a);
      disposeModel(b);
    });
  }

  it('the same seed gives the same weights on every test backend', async () => {
    const referenceModel = buildSmallCnn({ seed: 7 });
    const reference = weightValues(referenceModel);
    referenceModel.dispose();
    for (const backend of TEST_BACKENDS) {
      await onBackend(backend);
      const model = buildSmallCnn({ seed: 7 });
      weightValues(model).forEach((w, i) =>
        assert.deepEqual(
          new Uint32Array(w.buffer),
          new Uint32Array(reference[i]!.buffer),
          `weight ${i} on ${backend}`,
        ),
      );
      model.dispose();
    }
    await onBackend('cpu');
  });

  it('unseeded models draw fresh weights', () => {
    const a = buildMlp({ hidden: 8 });
    const b = buildMlp({ hidden: 8 });
    assert.notDeepEqual(weightValues(a)[0], weightValues(b)[0]);
    disposeModel(a);
    disposeModel(b);
  });

  it('mlp hidden kernel has He-normal scale (std about sqrt(2 / fan_in))', () => {
    const model = buildMlp({ seed: 5 });
    const kernel = weightValues(model)[0]!;
    let sq = 0;
    for (const v of kernel) sq += v * v;
    const std = Math.sqrt(sq / kernel.length);
    // TF.js draws a truncated normal (cut at 2 sigma, std about 0.88 sigma).
    const sigma = Math.sqrt(2 / 784);
    assert.ok(std > 0.8 * sigma && std < 1.05 * sigma, `std ${std}, sigma ${sigma}`);
    disposeModel(model);
  });
});

describe('model zoo: by name and bad options', () => {
  before(() => onBackend('cpu'));

  it('modelByName builds each model with the options given', () => {
    const mlp = modelByName('mlp', { hidden: 16, classes: 3, seed: 1 });
    assert.equal(mlp.countParams(), dense(784, 16) + dense(16, 3));
    const cnn = modelByName('small-cnn', { inputShape: [8, 8, 1], classes: 2, seed: 1 });
    assert.equal(
      cnn.countParams(),
      conv(3, 1, 16) + conv(3, 16, 32) + dense(2 * 2 * 32, 128) + dense(128, 2),
    );
    disposeModel(mlp);
    disposeModel(cnn);
  });

  it('modelByName rejects unknown names, listing the known ones', () => {
    assert.throws(() => modelByName('resnet50'), {
      message:
        "Unknown model 'resnet50'; expected one of: mlp, small-cnn, resnet20, char-transformer.",
    });
  });

  it('rejects bad options with messages that name the option', () => {
    assert.throws(
      () => buildMlp({ hidden: 0 }),
      /mlp: option 'hidden' must be a positive integer, got 0/,
    );
    assert.throws(() => buildMlp({ classes: 2.5 }), /option 'classes'.*got 2.5/);
    assert.throws(() => buildMlp({ inputShape: [] }), /option 'inputShape'.*got \[\]/);
    assert.throws(() => buildMlp({ seed: NaN }), /seed must be a non-negative integer, got NaN/);
    assert.throws(() => buildMlp({ seed: -1 }), /seed must be a non-negative integer, got -1/);
    assert.throws(
      () => modelByName('small-cnn', { inputShape: [28, 28] }),
      /small-cnn: option 'inputShape' must be \[height, width, channels\], got \[28,28\]/,
    );
    assert.throws(() => buildSmallCnn({ inputShape: [3, 28, 1] }), /at least 4x4.*got 3x28/);
    assert.throws(() => modelByName('small-cnn', { hidden: 64 }), /'hidden' applies only to 'mlp'/);
  });

  it('building and disposing models leaks no tensors', () => {
    const before = tf.memory().numTensors;
    for (const name of MODEL_NAMES) {
      const model = modelByName(name, { ...REQUIRED[name], seed: 9 });
      disposeModel(model);
    }
    assert.equal(tf.memory().numTensors, before);
  });
});

describe('model zoo: seed 0', () => {
  before(() => onBackend('cpu'));

  it('is a real seed (TF.js initialisers treat 0 as none; we must not pass it through)', () => {
    const a = buildMlp({ seed: 0 });
    const b = buildMlp({ seed: 0 });
    const wa = weightValues(a);
    const wb = weightValues(b);
    wa.forEach((w, i) => assert.deepEqual(w, wb[i]));
    disposeModel(a);
    disposeModel(b);
  });
});

describe('model zoo: vector inputs', () => {
  before(() => onBackend('cpu'));

  it('builds an MLP on [features] inputs (no flatten needed)', () => {
    const model = buildMlp({ inputShape: [6], hidden: 8, classes: 3, seed: 1 });
    const y = model.predict(tf.zeros([2, 6])) as tf.Tensor;
    assert.deepEqual(y.shape, [2, 3]);
    assert.equal(model.countParams(), 6 * 8 + 8 + 8 * 3 + 3);
    y.dispose();
    disposeModel(model);
  });
});
