/**
 * What the CLI's check that a first-order step left every weight finite costs (training.ts,
 * after each SGD/Adam step, so that no checkpoint or model is written from NaN weights), on
 * the demo's small CNN (batch 64, Adam) on cpu with the native kernels (the default path):
 * the kernel-based allFinite (optimizers/non-finite.ts: sum(x * 0) per tensor, one scalar
 * downloaded) against weightsFinite (cli/finite-weights.ts: the same sum in a JS loop over the
 * weights' values). Interleaved call by call after each step; medians printed.
 *
 *   npx tsx bench/speed/finite-check.ts [--steps 200] [--threads 1] [--no-native]
 */
import * as tf from '@tensorflow/tfjs';
import { weightsFinite } from '../../src/cli/finite-weights.js';
import { buildSmallCnn, useBackend } from '../../src/index.js';
import { enableNativeKernels } from '../../src/native/index.js';
import { allFinite } from '../../src/optimizers/non-finite.js';

tf.env().set('IS_TEST', false);

const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const steps = Number(arg('steps') ?? 200);
const native = !process.argv.includes('--no-native');

await useBackend(native ? 'cpu' : 'wasm');
if (native) {
  const status = enableNativeKernels({ threads: Number(arg('threads') ?? 1) });
  if (!status.enabled) throw new Error(`native kernels unavailable: ${status.reason}`);
}
const model = buildSmallCnn({ seed: 1 });
const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
const x = tf.randomUniform([64, 28, 28, 1], 0, 1, 'float32', 1);
const y = tf.oneHot(tf.randomUniform([64], 0, 10, 'int32', 2) as tf.Tensor1D, 10);
const optimizer = tf.train.adam(0.001);
const step = () =>
  optimizer.minimize(
    () => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor),
    false,
    vars,
  );

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const timed = (f: () => boolean) => {
  const t0 = performance.now();
  if (!f()) throw new Error('a weight is not finite');
  return performance.now() - t0;
};
for (let i = 0; i < 10; i++) step(); // warm-up: step graphs capture, confirm and replay
const stepMs: number[] = [];
const kernelsMs: number[] = [];
const loopMs: number[] = [];
for (let i = 0; i < steps; i++) {
  const t0 = performance.now();
  step();
  stepMs.push(performance.now() - t0);
  // Alternating which goes first, so that neither always follows the step directly.
  if (i % 2 === 0) {
    kernelsMs.push(timed(() => allFinite(vars)));
    loopMs.push(timed(() => weightsFinite(vars)));
  } else {
    loopMs.push(timed(() => weightsFinite(vars)));
    kernelsMs.push(timed(() => allFinite(vars)));
  }
}
const parameters = vars.reduce((n, v) => n + v.size, 0);
const load = (await import('node:os')).loadavg().map((l) => l.toFixed(1));
console.log(
  `small CNN, ${vars.length} weight tensors, ${parameters} parameters, Adam step on ` +
    `${native ? 'cpu + native kernels' : 'wasm'}: ${steps} steps, medians (load ${load.join(' ')})`,
);
console.log(`  step                         ${median(stepMs).toFixed(3)} ms`);
console.log(`  allFinite (kernels)          ${median(kernelsMs).toFixed(3)} ms`);
console.log(`  weightsFinite (JS loop)      ${median(loopMs).toFixed(3)} ms`);
