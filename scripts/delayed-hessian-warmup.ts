/**
 * Does computing D every step at the start (AdaHessian's hessianWarmupSteps, the authors'
 * commented-out `num_step <= 8000` in their fairseq code) make the delayed Hessian (f > 1) train
 * in the cost-accuracy set-up of docs/RESULTS.md (small CNN, 2048 slice images, 1000 test
 * images, 2 epochs of 32 steps, batch 64, lr 0.15, constant rate)? Prints the test accuracy and
 * final train loss per f, warm-up and seed. Same data, order, model and probes as
 * `adahessian sweep --no-lr --block-sizes 1 --hessian-every f` (which has no such warm-up).
 *
 *   node --import tsx scripts/delayed-hessian-warmup.ts [f list=1,2,5] [warm-ups=0,16] [seeds=1,2,3]
 */
import * as tf from '@tensorflow/tfjs';
import { batches } from '../src/data/index.js';
import { softmaxCrossEntropy } from '../src/losses.js';
import { AdaHessian } from '../src/optimizers/adahessian.js';
import { prepareBackend } from '../src/cli/backend.js';
import { loadDataset } from '../src/cli/datasets.js';
import { buildModel, dataOrderSeed, resolveTrainConfig } from '../src/cli/train-config.js';
import { evaluate, trainStep } from '../src/cli/training.js';

const list = (i: number, fallback: string) => (process.argv[i] ?? fallback).split(',').map(Number);
const fs = list(2, '1,2,5');
const warmups = list(3, '0,16');
const seeds = list(4, '1,2,3');
const path = await prepareBackend(undefined, undefined);
console.log(`backend ${path.backend}${path.native ? ' + native kernels' : ''}`);
const lossFn = (y: tf.Tensor, logits: tf.Tensor) => softmaxCrossEntropy(y, logits);

for (const f of fs) {
  for (const warmup of warmups) {
    const accs: string[] = [];
    for (const seed of seeds) {
      const config = resolveTrainConfig({
        trainSize: 2048,
        testSize: 1000,
        batchSize: 64,
        epochs: 2,
        hessianEvery: f,
        seed,
        backend: path.backend,
      });
      const data = loadDataset(config);
      const model = buildModel(config, data.modelOptions);
      // As buildOptimizer(config), plus the Hessian warm-up the CLI does not offer.
      const optimizer = new AdaHessian({
        learningRate: config.lr,
        hessianEvery: f,
        hessianWarmupSteps: warmup,
        seed,
      });
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      let lossSum = 0;
      let seen = 0;
      let diverged = false;
      for (let epoch = 0; epoch < config.epochs; epoch++) {
        lossSum = 0;
        seen = 0;
        const order = batches(data.train.x, data.train.y, config.batchSize, {
          shuffle: true,
          seed: dataOrderSeed(seed, epoch),
        });
        for (const b of order) {
          try {
            if (!diverged) {
              const { loss } = trainStep(model, optimizer, vars, b.x, b.y, lossFn);
              lossSum += loss * b.x.shape[0]!;
              seen += b.x.shape[0]!;
            }
          } catch {
            diverged = true; // a refused non-finite step
          } finally {
            tf.dispose([b.x, b.y]);
          }
        }
      }
      const test = evaluate(model, data.test, lossFn);
      accs.push(
        diverged
          ? 'diverged'
          : `${(test.accuracy * 100).toFixed(1)} % (train loss ${(lossSum / seen).toFixed(3)})`,
      );
      optimizer.dispose();
      model.dispose();
      data.dispose();
    }
    console.log(`f = ${f}, Hessian every step for the first ${warmup} steps: ${accs.join('; ')}`);
  }
}
