/**
 * First-order step graphs by default: with enableNativeKernels() alone, tf.train.adam's and
 * AdamW's minimize take their loss and gradients from a replayed graph (status counters), and
 * train a small model to op by op's weights and losses to float32 rounding; with stepGraphs:
 * 'adahessian' they stay op by op (bit for bit TF.js's gradients) while AdaHessian still
 * replays; a bad mode is named. No tensors are left over. The graphs of an optimizer that is
 * gone are freed (a sweep makes one optimizer per run), its counts kept.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import * as tf from '@tensorflow/tfjs';
import { adahessian, AdamW, buildMlp, softmaxCrossEntropy } from '../../../src/index.js';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import {
  disableNativeKernels,
  enableNativeKernels,
  nativeKernelStatus,
  stepGraphsStatus,
  type NativeKernelOptions,
} from '../../../src/native/index.js';
import { onBackend } from '../../helpers.js';
import { createStepGraphProvider } from '../../../src/native/step-graph/enable.js';
import { installStepGraphProvider } from '../../../src/native/step-graph/hook.js';

v8.setFlagsFromString('--expose-gc');

const unavailable = onnxRuntimeUnavailableReason();

const STEPS = 6;

interface Trained {
  weights: Float32Array[];
  losses: number[];
  replays: number;
  opByOp: number;
  firstOrder: boolean;
  mode: string | false;
}

/**
 * Six minimize steps of a small MLP on new batches each step, with the native kernels enabled
 * with `options`; returns the final weights, the losses and the counters.
 */
function train(make: () => tf.Optimizer, options: NativeKernelOptions): Trained {
  enableNativeKernels({ threads: 1, ...options });
  const mode = nativeKernelStatus().stepGraphs;
  const model = buildMlp({ seed: 4, inputShape: [12], hidden: 10, classes: 5 });
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const optimizer = make();
  const losses: number[] = [];
  for (let step = 0; step < STEPS; step++) {
    const x = tf.randomNormal([6, 12], 0, 1, 'float32', 300 + step);
    const y = tf.tidy(() => tf.oneHot(tf.randomUniform([6], 0, 5, 'int32', 400 + step), 5));
    const loss = optimizer.minimize(
      () => softmaxCrossEntropy(y, model.apply(x) as tf.Tensor),
      true,
      vars,
    )!;
    losses.push(loss.dataSync()[0]!);
    tf.dispose([x, y, loss]);
  }
  const graphs = stepGraphsStatus();
  const result: Trained = {
    weights: vars.map((v) => v.dataSync().slice() as Float32Array),
    losses,
    replays: graphs.replays,
    opByOp: graphs.opByOp,
    firstOrder: graphs.firstOrder,
    mode,
  };
  optimizer.dispose();
  model.dispose();
  disableNativeKernels();
  return result;
}

/** Largest |a - b| over all weights, and how far op by op's weights moved from the start. */
function assertNear(got: Trained, want: Trained, start: Float32Array[], what: string): void {
  got.weights.forEach((w, i) => {
    let err = 0;
    let moved = 0;
    w.forEach((x, k) => {
      err = Math.max(err, Math.abs(x - want.weights[i]![k]!));
      moved = Math.max(moved, Math.abs(want.weights[i]![k]! - start[i]![k]!));
    });
    assert.ok(moved > 0, `${what}: variable ${i} moved`);
    // float32 rounding of the gradients, through Adam's division by sqrt(v): a few ulps of the
    // step, never a different direction.
    assert.ok(
      err <= 1e-4 * moved + 1e-6,
      `${what}: variable ${i} differs by ${err}, moved ${moved}`,
    );
  });
  got.losses.forEach((l, s) =>
    assert.ok(
      Math.abs(l - want.losses[s]!) <= 1e-5 * Math.abs(want.losses[s]!),
      `${what}: loss ${s}`,
    ),
  );
}

const OPTIMIZERS: [string, () => tf.Optimizer][] = [
  ['tf.train.adam', () => tf.train.adam(0.01)],
  ['AdamW', () => new AdamW({ learningRate: 0.01 })],
];

describe('first-order step graphs by default', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));
  after(() => disableNativeKernels());

  // The MLP's initial weights (seeded), for "the weights moved".
  let start: Float32Array[] = [];
  before(() => {
    const model = buildMlp({ seed: 4, inputShape: [12], hidden: 10, classes: 5 });
    start = model.trainableWeights.map((w) => w.read().dataSync().slice() as Float32Array);
    model.dispose();
  });

  for (const [name, make] of OPTIMIZERS) {
    it(`${name}: the default replays its steps and matches op by op to float32 rounding`, () => {
      const tensors = tf.memory().numTensors;
      // Op by op with the same native kernels: what the replay must reproduce.
      const plain = train(make, { stepGraphs: false });
      const byDefault = train(make, {});
      const adahessianOnly = train(make, { stepGraphs: 'adahessian' });
      assert.equal(tf.memory().numTensors, tensors, 'no tensors left over');

      // Steps 1 and 2 capture (op by op), 3 to 6 replay the confirmed graph.
      assert.equal(byDefault.mode, 'all');
      assert.equal(byDefault.firstOrder, true);
      assert.equal(byDefault.replays, STEPS - 2);
      assertNear(byDefault, plain, start, `${name}, replayed`);

      // 'adahessian': TF.js's gradients, so the fused update's bit-for-bit equality holds.
      assert.equal(adahessianOnly.mode, 'adahessian');
      assert.equal(adahessianOnly.firstOrder, false);
      assert.equal(adahessianOnly.replays + adahessianOnly.opByOp, 0);
      adahessianOnly.weights.forEach((w, i) => assert.deepEqual(w, plain.weights[i]));
      assert.deepEqual(adahessianOnly.losses, plain.losses);
    });
  }

  it('an optimizer that is gone frees its graphs, and the status keeps its counts', async () => {
    const gc = vm.runInNewContext('gc') as () => void; // exposed below, at import
    const graphs = createStepGraphProvider();
    const uninstall = installStepGraphProvider(graphs.provider);
    const model = buildMlp({ seed: 4, inputShape: [12], hidden: 10, classes: 5 });
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const x = tf.randomNormal([6, 12], 0, 1, 'float32', 300);
    const y = tf.tidy(() => tf.oneHot(tf.randomUniform([6], 0, 5, 'int32', 400), 5));
    // Each run's optimizer is unreachable once the function returns.
    const run = () => {
      const optimizer = adahessian({ seed: 5, learningRate: 0.01 });
      for (let s = 0; s < 3; s++) {
        optimizer.minimize(() => softmaxCrossEntropy(y, model.apply(x) as tf.Tensor), false, vars);
      }
      optimizer.dispose();
    };
    for (let r = 0; r < 4; r++) run();
    assert.equal(graphs.status().replays, 4);
    for (let i = 0; i < 20 && graphs.all.size > 0; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(graphs.all.size, 0, 'every compiled step freed');
    assert.equal(graphs.status().replays, 4, 'counted still');
    uninstall();
    tf.dispose([x, y]);
    model.dispose();
  });

  it('true is all; a bad mode is named', () => {
    assert.equal(enableNativeKernels({ threads: 1, stepGraphs: true }).stepGraphs, 'all');
    assert.equal(stepGraphsStatus().firstOrder, true);
    disableNativeKernels();
    assert.throws(
      () => enableNativeKernels({ stepGraphs: 'adam' as never }),
      /'stepGraphs' must be 'all', 'adahessian', true or false, got "adam"/,
    );
  });
});
