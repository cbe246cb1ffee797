import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { gradAndHvp, softmaxCrossEntropy } from '../../src/index.js';
import { trainableVariables } from '../../src/autodiff/cases/nn.js';

/**
 * One Hessian-vector product through a full-size model: products shaped like the weights,
 * all finite, nothing leaked. Disposes x, labels and the model.
 */
export function assertOneHvpRuns(model: tf.LayersModel, x: tf.Tensor, labels: tf.Tensor): void {
  const vars = trainableVariables(model);
  const vs = vars.map((v, i) => tf.randomNormal(v.shape, 0, 1, 'float32', 20 + i));
  const before = tf.memory().numTensors;
  const r = gradAndHvp(
    () => softmaxCrossEntropy(labels, model.apply(x, { training: true }) as tf.Tensor),
    vars,
    vs,
  );
  assert.deepEqual(
    r.hvp.map((h) => h.shape),
    vars.map((v) => v.shape),
  );
  assert.ok(r.hvp.every((h) => h.dataSync().every(Number.isFinite)));
  tf.dispose([r.loss, ...r.grads, ...r.hvp]);
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([x, labels, ...vs]);
  model.dispose();
}
