/**
 * A replay's inputs whose stored array is not of their dtype's type (step-graph.ts, readStored):
 * tf.oneHot's int32 labels are stored as a Float32Array and converted on each read, which the
 * replay does once per stored array. Labels that change every other step (the same tensor
 * twice, then a new one) give replayed losses and gradients equal to op by op's on every step,
 * so a converted copy is never taken for another tensor's; no tensor leaks.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { softmaxCrossEntropy } from '../../../src/index.js';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import { CompiledSteps } from '../../../src/native/step-graph/hutchinson-step.js';
import { onBackend } from '../../helpers.js';
import { assertClose } from './helpers.js';

const unavailable = onnxRuntimeUnavailableReason();
if (unavailable !== '') console.log(`# step-graph replay-inputs test skipped: ${unavailable}`);

describe(
  'replayed steps read converted inputs afresh (cpu)',
  { skip: unavailable || false },
  () => {
    before(async () => onBackend('cpu'));

    it('int32 one-hot labels changing every other step: op by op values on every step', () => {
      const model = tf.sequential({
        layers: [
          tf.layers.dense({ inputShape: [10], units: 12, activation: 'relu' }),
          tf.layers.dense({ units: 6 }),
        ],
      });
      const weights = model.weights.map((w, i) =>
        tf.randomNormal(w.shape as number[], 0, 0.5, 'float32', 80 + i),
      );
      model.setWeights(weights);
      tf.dispose(weights);
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const x = tf.randomNormal([24, 10], 0, 1, 'float32', 90);
      const labelsAt = (k: number) =>
        tf.tidy(() => tf.oneHot(tf.randomUniform([24], 0, 6, 'int32', 700 + k), 6));
      const probe = labelsAt(0);
      // What this test is about: int32 data held in a Float32Array (readSync converts it).
      const stored = (
        tf.backend() as unknown as { data: { get(id: object): { values: unknown } } }
      ).data.get(probe.dataId)!.values;
      assert.equal(probe.dtype, 'int32');
      assert.ok(stored instanceof Float32Array);
      probe.dispose();

      const compiled = new CompiledSteps(vars);
      const start = tf.memory().numTensors;
      const replayed: boolean[] = [];
      let labels = labelsAt(0);
      for (let s = 0; s < 8; s++) {
        if (s > 0 && s % 2 === 0) {
          labels.dispose();
          labels = labelsAt(s);
        }
        const y = labels;
        const f = () => softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor);
        const want = tf.variableGrads(f, vars);
        const step = compiled.gradientStep(f);
        replayed.push(step.replayed);
        assertClose(
          [step.loss, ...step.grads.map((g) => g!)],
          [want.value, ...vars.map((v) => want.grads[v.name]!)],
          1e-5,
          `step ${s}`,
        );
        tf.dispose([
          step.loss,
          ...step.grads.map((g) => g!),
          want.value,
          ...Object.values(want.grads),
        ]);
      }
      labels.dispose();
      assert.deepEqual(replayed.slice(2), [true, true, true, true, true, true]);
      assert.equal(tf.memory().numTensors, start);
      compiled.dispose();
      tf.dispose([x]);
      model.dispose();
    });
  },
);
