/**
 * The demo's AdaHessian/Adam step-time ratio in its steady state, both optimizers in one
 * process: the demo's small CNN, optimizers and default path (`prepareBackend` with nothing
 * given), one batch of 64 Fashion-MNIST images, each optimizer warmed up past its captures,
 * then one replayed step of each in turn (training.ts's trainStep, as the demo's training
 * loop calls it), `--rounds` times. Taking turns puts both under the same load, which on a
 * shared machine drifts by more than what a change buys; process CPU time is printed too.
 * The one-time costs (captures, compiles, confirmations) that the demo's mean also holds are
 * bench/speed/demo-steps.ts's.
 *
 *   npx tsx bench/speed/demo-ratio.ts
 *   npx tsx bench/speed/demo-ratio.ts --rounds 200 --batch 56
 *   npx tsx bench/speed/demo-ratio.ts --threads 2     # as the demo's --threads 2
 */
import { loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { prepareBackend } from '../../src/cli/backend.js';
import { loadDataset } from '../../src/cli/datasets.js';
import { buildModel, buildOptimizer, resolveTrainConfig } from '../../src/cli/train-config.js';
import { trainStep } from '../../src/cli/training.js';
import { DEMO_DEFAULTS, demoTrainSettings } from '../../src/cli/commands/demo.js';
import { softmaxCrossEntropy } from '../../src/index.js';
import { arg } from './args.js';

const rounds = Number(arg('rounds', '100'));
const batch = Number(arg('batch', String(DEMO_DEFAULTS.batchSize)));
const warmup = 4;
const threadsArg = arg('threads', '');
const threads = threadsArg === '' ? undefined : Number(threadsArg);

const path = await prepareBackend(undefined, undefined, undefined, undefined, threads);
const settings = demoTrainSettings({ ...DEMO_DEFAULTS, backend: path.backend });
const data = loadDataset(resolveTrainConfig(settings));
const x = data.train.x.slice(0, batch);
const y = data.train.y.slice(0, batch);
const lossFn = (labels: tf.Tensor, logits: tf.Tensor) => softmaxCrossEntropy(labels, logits);

const runs = (['adam', 'adahessian'] as const).map((optimizer) => {
  const config = resolveTrainConfig({ ...settings, optimizer });
  const model = buildModel(config, data.modelOptions);
  const opt = buildOptimizer(config);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  for (let i = 0; i < warmup; i++) trainStep(model, opt, vars, x, y, lossFn);
  return {
    optimizer,
    step: () => trainStep(model, opt, vars, x, y, lossFn),
    wall: [] as number[],
    cpu: [] as number[],
  };
});
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const loadBefore = loadavg()[0]!;
for (let r = 0; r < rounds; r++) {
  for (const run of runs) {
    const c = cpuMs();
    const t = performance.now();
    run.step();
    run.wall.push(performance.now() - t);
    run.cpu.push(cpuMs() - c);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const [adam, ada] = runs.map((r) => ({ wall: median(r.wall), cpu: median(r.cpu) }));
console.log(
  `${path.backend}${path.native ? ` + native, step graphs ${path.stepGraphs}, ${path.threads ?? 1} thread(s)` : ''}; batch ${batch}; ${rounds} rounds after ${warmup} warm-up steps; load ${loadBefore.toFixed(1)} -> ${loadavg()[0]!.toFixed(1)}\n` +
    `median ms per step, wall (CPU): Adam ${adam!.wall.toFixed(1)} (${adam!.cpu.toFixed(1)}), AdaHessian ${ada!.wall.toFixed(1)} (${ada!.cpu.toFixed(1)}); AdaHessian/Adam ${(ada!.wall / adam!.wall).toFixed(2)} (CPU ${(ada!.cpu / adam!.cpu).toFixed(2)})`,
);
tf.dispose([x, y]);
data.dispose();
