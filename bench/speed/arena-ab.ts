/**
 * A/B in one process: the small CNN's AdaHessian step (batch 64, as the demo) on cpu + native
 * kernels with ONNX Runtime's per-graph memory arenas on and off, rounds interleaved; prints
 * medians and the ratio off/on. Memory of the same choice: bench/speed/memory.ts.
 *
 *   npx tsx bench/speed/arena-ab.ts --rounds 5 --steps 10
 */
import * as tf from '@tensorflow/tfjs';
import { adahessian, buildSmallCnn, softmaxCrossEntropy, useBackend } from '../../src/index.js';
import { enableNativeKernels } from '../../src/native/index.js';

tf.env().set('IS_TEST', false);

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const rounds = arg('rounds', 5);
const steps = arg('steps', 10);
const batch = arg('batch', 64);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

await useBackend('cpu');
const model = buildSmallCnn({ seed: 1 });
const optimizer = adahessian({ seed: 1 });
const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
const x = tf.randomNormal([batch, 28, 28, 1], 0, 1, 'float32', 1);
const y = tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32', 2), 10).toFloat();
const step = () => {
  const cost = optimizer.minimize(
    () => softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor),
    true,
    vars,
  );
  cost?.dataSync();
  cost?.dispose();
};
const times: Record<'on' | 'off', number[]> = { on: [], off: [] };
for (let r = 0; r < rounds; r++) {
  for (const mode of ['on', 'off'] as const) {
    enableNativeKernels({ sessionArenas: mode === 'on' });
    for (let i = 0; i < 3; i++) step(); // compile this mode's graphs
    const start = performance.now();
    for (let i = 0; i < steps; i++) step();
    times[mode].push((performance.now() - start) / steps);
  }
}
const on = median(times.on);
const off = median(times.off);
console.log(
  `small CNN AdaHessian step, batch ${batch}, cpu + native, median of ${rounds} rounds: ` +
    `arenas on ${on.toFixed(1)} ms, off ${off.toFixed(1)} ms, off/on ${(off / on).toFixed(3)}`,
);
