/**
 * The replay's stubbed forward pass alone (StepGraphCompiler's stubForward, step-graph.ts step
 * 4), for one model's gradient step graph: after the graph is confirmed, the stub runs `--runs`
 * times and its wall and process CPU time are reported (minimum and median; CPU time is less
 * disturbed by other processes' load).
 *
 *   npx tsx bench/speed/replay-stub.ts --model transformer     # or cnn, resnet20
 */
import * as tf from '@tensorflow/tfjs';
import {
  buildCharTransformer,
  buildResNet20,
  buildSmallCnn,
  softmaxCrossEntropy,
  useBackend,
} from '../../src/index.js';
import { enableNativeKernels } from '../../src/native/index.js';
import { CompiledSteps } from '../../src/native/step-graph/hutchinson-step.js';
import { arg } from './args.js';

tf.env().set('IS_TEST', false);
await useBackend('cpu');
enableNativeKernels({ threads: 1, stepGraphs: false });
const name = arg('model', 'transformer');
const runs = Number(arg('runs', '80'));
const batch = name === 'cnn' ? 128 : 64;
const model =
  name === 'cnn'
    ? buildSmallCnn({ seed: 1 })
    : name === 'resnet20'
      ? buildResNet20({ inputShape: [28, 28, 1], seed: 1 })
      : buildCharTransformer({ vocabSize: 96, contextLength: 64, seed: 1 });
const { x, labels } = tf.tidy(() =>
  name === 'transformer'
    ? {
        x: tf.randomUniform([batch, 64], 0, 96, 'int32', 1),
        labels: tf.oneHot(tf.randomUniform([batch, 64], 0, 96, 'int32', 2), 96),
      }
    : {
        x: tf.randomUniform([batch, 28, 28, 1], 0, 1, 'float32', 1),
        labels: tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32', 2), 10),
      },
);
const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
const steps = new CompiledSteps(vars);
const f = () => softmaxCrossEntropy(labels, model.apply(x, { training: true }) as tf.Tensor);
for (let i = 0; i < 3; i++) {
  const r = steps.gradientStep(f);
  tf.dispose([r.loss, ...r.grads.filter((g): g is tf.Tensor => g != null)]);
}
// Private in the typings; this benchmark calls the stub directly.
const compiler = steps.gradient as unknown as {
  entries: { confirmed: boolean }[];
  stubForward(entry: unknown, f: () => tf.Scalar): unknown;
};
const entry = compiler.entries.find((e) => e.confirmed);
if (entry == null)
  throw new Error(`${name}: no confirmed graph (${steps.gradient.status.lastReason})`);
const wall: number[] = [];
const cpu: number[] = [];
for (let i = 0; i < runs; i++) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  if (compiler.stubForward(entry, f) == null) throw new Error(`${name}: the stub stopped`);
  wall.push(performance.now() - t0);
  const d = process.cpuUsage(c0);
  cpu.push((d.user + d.system) / 1000);
}
const summary = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `min ${s[0]!.toFixed(2)} median ${s[Math.floor(s.length / 2)]!.toFixed(2)} ms`;
};
console.log(`${name} stub over ${runs} runs: wall ${summary(wall)}; CPU time ${summary(cpu)}`);
