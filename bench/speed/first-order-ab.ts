/**
 * A/B in one process: first-order training steps on cpu + native kernels with the fused
 * optimizer updates (src/native/first-order-update.ts) on and off (enableNativeKernels'
 * fusedOptimizerUpdate), rounds interleaved; prints medians, on/off, and each optimizer's
 * cost over plain SGD (whose update neither mode fuses) in both modes. Also the update alone
 * (applyGradients with one step's gradients, repeated). Process CPU time is printed next to
 * wall time: on this shared 2-core machine the load often exceeds the cores.
 *
 *   npx tsx bench/speed/first-order-ab.ts --rounds 5 --steps 10
 *   npx tsx bench/speed/first-order-ab.ts --model transformer --rounds 3 --steps 3
 */
import * as tf from '@tensorflow/tfjs';
import {
  AdamW,
  buildCharTransformer,
  buildSmallCnn,
  softmaxCrossEntropy,
  useBackend,
} from '../../src/index.js';
import { enableNativeKernels } from '../../src/native/index.js';
import { arg } from './args.js';

tf.env().set('IS_TEST', false);

const rounds = Number(arg('rounds', '5'));
const steps = Number(arg('steps', '10'));
const modelName = arg('model', 'cnn');
if (modelName !== 'cnn' && modelName !== 'transformer') {
  throw new Error(`--model: expected cnn or transformer, got '${modelName}'`);
}
const OPTIMIZERS: Record<string, () => tf.Optimizer> = {
  sgd: () => tf.train.sgd(0.01),
  momentum: () => tf.train.momentum(0.01, 0.9),
  adam: () => tf.train.adam(0.001),
  adamw: () => new AdamW({ learningRate: 0.001 }),
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

await useBackend('cpu');
// As bench/speed/step.ts: the CNN at batch 128, the transformer at 64 sequences of 64.
const [model, x, y] =
  modelName === 'cnn'
    ? [
        buildSmallCnn({ seed: 1 }),
        tf.randomUniform([128, 28, 28, 1], 0, 1, 'float32', 1),
        tf.oneHot(tf.randomUniform([128], 0, 10, 'int32', 2), 10),
      ]
    : [
        buildCharTransformer({ vocabSize: 96, contextLength: 64, seed: 1 }),
        tf.randomUniform([64, 64], 0, 96, 'int32', 1),
        tf.oneHot(tf.randomUniform([64, 64], 0, 96, 'int32', 2), 96),
      ];
const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
const optimizers = Object.fromEntries(Object.entries(OPTIMIZERS).map(([k, make]) => [k, make()]));
const step = (o: tf.Optimizer) =>
  o.minimize(
    () => softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor),
    false,
    vars,
  );

const times = new Map<string, number[]>();
const record = (key: string, ms: number) => times.set(key, [...(times.get(key) ?? []), ms]);
/** Wall and process CPU ms per call of `body`, over `n` calls. */
function timed(n: number, body: () => void): { wall: number; cpu: number } {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) body();
  const c = process.cpuUsage(c0);
  return { wall: (performance.now() - t0) / n, cpu: (c.user + c.system) / 1000 / n };
}
for (let r = 0; r < rounds; r++) {
  for (const mode of ['on', 'off'] as const) {
    // Op by op (no step graphs, the default since the seventh session): the A/B is of the
    // update inside the op-by-op step it was measured in.
    enableNativeKernels({ fusedOptimizerUpdate: mode === 'on', stepGraphs: false });
    for (const [name, o] of Object.entries(optimizers)) {
      for (let i = 0; i < 2; i++) step(o); // this mode's graphs compiled, slots made
      const s = timed(steps, () => step(o));
      record(`${name}|${mode}|step`, s.wall);
      record(`${name}|${mode}|step cpu`, s.cpu);
      const { grads } = o.computeGradients(
        () => softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor),
        vars,
      );
      const u = timed(steps * 5, () => o.applyGradients(grads));
      tf.dispose(grads);
      record(`${name}|${mode}|update`, u.wall);
      record(`${name}|${mode}|update cpu`, u.cpu);
    }
  }
  process.stderr.write(`round ${r + 1}/${rounds}\n`);
}
const med = (name: string, mode: string, what: string) =>
  median(times.get(`${name}|${mode}|${what}`)!);
for (const what of ['step', 'step cpu', 'update', 'update cpu']) {
  console.log(
    `\n${modelName}, cpu + native: ${what === 'step' || what === 'update' ? `${what}, wall` : what}` +
      ` ms (median of ${rounds} interleaved rounds)`,
  );
  console.log('optimizer | fused on | fused off | on/off | over SGD, on | over SGD, off');
  for (const name of Object.keys(OPTIMIZERS)) {
    const [on, off] = [med(name, 'on', what), med(name, 'off', what)];
    console.log(
      [
        name,
        on.toFixed(2),
        off.toFixed(2),
        (on / off).toFixed(3),
        (on - med('sgd', 'on', what)).toFixed(2),
        (off - med('sgd', 'off', what)).toFixed(2),
      ].join(' | '),
    );
  }
}
console.log(
  `load after: ${(await import('node:os'))
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
