/**
 * Why AdaHessian with the Hessian every f > 1 steps collapses in short runs: the first steps of
 * the cost-accuracy set-up of docs/RESULTS.md (small CNN, 2048 slice images, batch 64, lr 0.15,
 * constant rate, seed 1), once per f, printing per step the loss before it, the size of each
 * layer's update relative to its weights, and for the first dense kernel the diagonal D that
 * entered v and the denominator sqrt(v_hat) the step divided by.
 *
 *   node --import tsx scripts/delayed-hessian-first-steps.ts [steps=4] [f list=1,2] [lr=0.15]
 *
 * Uses the CLI's own pieces (config, data, model, optimizer, data order), so step 1 here is step
 * 1 of `adahessian train --train-size 2048 --batch-size 64 --hessian-every f`.
 */
import * as tf from '@tensorflow/tfjs';
import { batches } from '../src/data/index.js';
import { softmaxCrossEntropy } from '../src/losses.js';
import { useBackend } from '../src/index.js';
import type { AdaHessian } from '../src/optimizers/adahessian.js';
import { loadDataset } from '../src/cli/datasets.js';
import {
  buildModel,
  buildOptimizer,
  dataOrderSeed,
  resolveTrainConfig,
} from '../src/cli/train-config.js';
import { trainStep } from '../src/cli/training.js';

const steps = Number(process.argv[2] ?? 4);
const fs = (process.argv[3] ?? '1,2').split(',').map(Number);
const lr = Number(process.argv[4] ?? 0.15);
await useBackend('cpu');

const quantile = (sorted: Float32Array, q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

for (const f of fs) {
  const config = resolveTrainConfig({
    trainSize: 2048,
    testSize: 100,
    batchSize: 64,
    epochs: 1,
    lr,
    hessianEvery: f,
    seed: 1,
    backend: 'cpu',
  });
  const data = loadDataset(config);
  const model = buildModel(config, data.modelOptions);
  const optimizer = buildOptimizer(config) as AdaHessian;
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const denseIndex = vars.findIndex((v) => v.rank === 2);
  console.log(`\nf = ${f}, lr ${lr}: first dense kernel '${vars[denseIndex]!.name}'`);
  let step = 0;
  let vBefore: Float32Array | null = null;
  for (const batch of batches(data.train.x, data.train.y, config.batchSize, {
    shuffle: true,
    seed: dataOrderSeed(config.seed, 0),
  })) {
    if (step === steps) {
      tf.dispose([batch.x, batch.y]);
      continue;
    }
    step++;
    const hessian = optimizer.isHessianDue();
    const before = vars.map((v) => v.clone());
    const { loss } = trainStep(model, optimizer, vars, batch.x, batch.y, (y, l) =>
      softmaxCrossEntropy(y, l),
    );
    tf.dispose([batch.x, batch.y]);
    const rel = vars.map((v, i) =>
      // Biases start at 0: their update is printed as it is (|dw|), weights' relative to |w|.
      tf.tidy(() => {
        const dw = tf.norm(tf.sub(v, before[i]!)).dataSync()[0]!;
        const w = tf.norm(before[i]!).dataSync()[0]!;
        return w > 0 ? dw / w : dw;
      }),
    );
    tf.dispose(before);
    // v of the dense kernel from the optimizer's saved state; v_hat = v / (1 - beta2^n).
    const state = await optimizer.getWeights();
    const vEntry = state.find((s) => s.name === `${vars[denseIndex]!.name}/v`)!;
    const v = vEntry.tensor.dataSync() as Float32Array;
    const n = optimizer.hessianUpdateCount;
    const vHat = v.map((x) => x / (1 - 0.999 ** n));
    const denom = Float32Array.from(vHat.map(Math.sqrt)).sort();
    let line =
      `step ${step} (${hessian ? 'new D' : 'no D '}, n = ${n}): loss before ${loss.toFixed(2)}; ` +
      `|dw|/|w| (biases |dw|) ${rel.map((r) => r.toFixed(2)).join(' ')}; dense sqrt(v_hat): ` +
      `${((denom.filter((d) => d < 1e-3).length / denom.length) * 100).toFixed(0)}% < 1e-3, ` +
      `median ${quantile(denom, 0.5).toExponential(2)}`;
    if (hessian) {
      // The D that entered v this step: (v - beta2 v_before) / (1 - beta2), its square root.
      const d = Float32Array.from(
        v.map((x, i) => Math.sqrt(Math.max(0, (x - 0.999 * (vBefore?.[i] ?? 0)) / 0.001))),
      ).sort();
      line += `; new |D| median ${quantile(d, 0.5).toExponential(2)}, ${((d.filter((x) => x < 1e-3).length / d.length) * 100).toFixed(0)}% < 1e-3`;
    }
    vBefore = v.slice();
    // iter, hessianUpdates and the generator are new tensors; the rest are the optimizer's slots.
    tf.dispose(state.slice(0, 3).map((s) => s.tensor));
    console.log(line);
  }
  optimizer.dispose();
  model.dispose();
  data.dispose();
}
