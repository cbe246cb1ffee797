/**
 * Where a replayed step's time goes outside ONNX Runtime's `session.run`, per model and
 * optimizer (step.ts's models, batches and optimizers, cpu + native kernels, step graphs on):
 * after warm-up steps (capture, confirm), `--steps` replayed steps are timed whole, and the
 * step graph's parts and the optimizer's update are timed by wrapping them (prototype methods,
 * for this benchmark only):
 *
 *   stub      the stubbed forward pass (StepGraphCompiler's stubForward)
 *   feeds     building ONNX Runtime's input and output tensors (runGraph minus session.run)
 *   run       inside session.run
 *   wrap      wrapping the graph's outputs into TF.js tensors, assigning, disposing (finish)
 *   update    the optimizer's update (AdaHessian: the fused update and allFinite; Adam: its
 *             applyGradients)
 *   rest      the step minus all of the above (minimize's own code, probes, checks, GC)
 *
 * and the CPU time of the step outside session.run (process CPU time: one ONNX Runtime thread
 * runs on the caller's; GC's helper threads count too), which other processes' load disturbs
 * less than wall time.
 *
 *   npx tsx bench/speed/replay-overhead.ts
 *   npx tsx bench/speed/replay-overhead.ts --models cnn --optimizers adahessian-f1 --steps 20
 */
import * as tf from '@tensorflow/tfjs';
import {
  adahessian,
  buildCharTransformer,
  buildResNet20,
  buildSmallCnn,
  softmaxCrossEntropy,
  useBackend,
} from '../../src/index.js';
import { enableNativeKernels, stepGraphsStatus } from '../../src/native/index.js';
import { StepGraphCompiler } from '../../src/native/step-graph/step-graph.js';
import { cpuAdaHessianUpdate } from '../../src/native/adahessian-update.js';
import { arg } from './args.js';

tf.env().set('IS_TEST', false);

const models = arg('models', 'cnn,transformer,resnet20').split(',');
const optimizers = arg('optimizers', 'adam,adahessian-f1').split(',');
const steps = Number(arg('steps', '10'));
const warmup = Number(arg('warmup', '4'));

await useBackend('cpu');
const native = enableNativeKernels({ threads: 1 });
if (!native.enabled) throw new Error(`native kernels unavailable: ${native.reason}`);

const PARTS = ['stub', 'feeds', 'run', 'wrap', 'update'] as const;
type Part = (typeof PARTS)[number];
const spent: Record<Part, number> = { stub: 0, feeds: 0, run: 0, wrap: 0, update: 0 };
/** CPU time (user + system, ms) inside session.run: less disturbed by other processes' load. */
let runCpu = 0;
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** Replaces `obj[name]` by a version that adds its time to `spent[part]` (minus `inner`). */
function timed(obj: object, name: string, part: Part, inner?: Part): void {
  const o = obj as Record<string, (...a: unknown[]) => unknown>;
  const original = o[name]!;
  // defineProperty: the native binding's methods are read-only (but configurable).
  const wrapped = function (this: unknown, ...a: unknown[]) {
    const innerBefore = inner == null ? 0 : spent[inner];
    const t0 = performance.now();
    try {
      return original.apply(this, a);
    } finally {
      spent[part] += performance.now() - t0 - (inner == null ? 0 : spent[inner] - innerBefore);
    }
  };
  Object.defineProperty(o, name, { value: wrapped, configurable: true, writable: true });
}
const proto = StepGraphCompiler.prototype as unknown as object;
timed(proto, 'stubForward', 'stub');
timed(proto, 'runGraph', 'feeds', 'run');
timed(proto, 'finish', 'wrap');
// The binding's methods cannot be redefined: each compiled entry's session gets a timed front.
type Session = { run(...a: unknown[]): unknown; dispose(): void; endProfiling?(): string };
const compile = (proto as { compile: (...a: unknown[]) => { session: Session } }).compile;
(proto as { compile: typeof compile }).compile = function (this: unknown, ...a: unknown[]) {
  const entry = compile.apply(this, a);
  const inner = entry.session;
  const front = {
    run: (...r: unknown[]) => inner.run(...r),
    dispose: () => inner.dispose(),
    endProfiling: () => inner.endProfiling?.() ?? '',
  };
  timed(front, 'run', 'run');
  const timedRun = front.run;
  front.run = (...r: unknown[]) => {
    const c0 = cpuMs();
    try {
      return timedRun(...r);
    } finally {
      runCpu += cpuMs() - c0;
    }
  };
  entry.session = front;
  return entry;
};
timed(cpuAdaHessianUpdate, 'update', 'update');
timed(cpuAdaHessianUpdate, 'allFinite', 'update');
timed(tf.AdamOptimizer.prototype, 'applyGradients', 'update');

function setUp(name: string) {
  const heavy = name !== 'cnn';
  // --batch: the demo's small CNN trains at 64 (bench/speed/demo-steps.ts).
  const batch = Number(arg('batch', heavy ? '64' : '128'));
  const model =
    name === 'cnn'
      ? buildSmallCnn({ seed: 1 })
      : name === 'transformer'
        ? buildCharTransformer({ vocabSize: 96, contextLength: 64, seed: 1 })
        : buildResNet20({ inputShape: [28, 28, 1], seed: 1 });
  const { x, labels } = tf.tidy(() => {
    if (name === 'transformer') {
      const ids = tf.randomUniform([batch, 64], 0, 96, 'int32', 2);
      return { x: tf.randomUniform([batch, 64], 0, 96, 'int32', 1), labels: tf.oneHot(ids, 96) };
    }
    const ids = tf.randomUniform([batch], 0, 10, 'int32', 2);
    return {
      x: tf.randomUniform([batch, 28, 28, 1], 0, 1, 'float32', 1),
      labels: tf.oneHot(ids, 10),
    };
  });
  return { model, x, labels };
}

console.log(
  `ms per replayed step, ${steps} steps after ${warmup} warm-up, 1 thread; parts: ${PARTS.join(', ')}, rest`,
);
for (const name of models) {
  for (const opt of optimizers) {
    const { model, x, labels } = setUp(name);
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const optimizer =
      opt === 'adam'
        ? tf.train.adam(0.001)
        : adahessian({ hessianEvery: 1, seed: 1, learningRate: 0.005 });
    const lossFn = () =>
      softmaxCrossEntropy(labels, model.apply(x, { training: true }) as tf.Tensor);
    for (let i = 0; i < warmup; i++) optimizer.minimize(lossFn, false, vars);
    const replaysBefore = stepGraphsStatus().replays;
    const tensorsBefore = tf.memory().numTensors;
    for (const p of PARTS) spent[p] = 0;
    runCpu = 0;
    const c0 = cpuMs();
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) optimizer.minimize(lossFn, false, vars);
    const total = (performance.now() - t0) / steps;
    const outsideCpu = (cpuMs() - c0 - runCpu) / steps;
    const replays = stepGraphsStatus().replays - replaysBefore;
    const per = PARTS.map((p) => spent[p] / steps);
    const rest = total - per.reduce((a, b) => a + b, 0);
    console.log(
      `${name.padEnd(12)} ${opt.padEnd(14)} step ${total.toFixed(1).padStart(7)}  ` +
        PARTS.map((p, k) => `${p} ${per[k]!.toFixed(1)}`).join('  ') +
        `  rest ${rest.toFixed(1)}  | outside run ${(total - per[2]!).toFixed(1)}` +
        ` (CPU time ${outsideCpu.toFixed(1)})` +
        `  (replays ${replays}/${steps}, tensors ${tf.memory().numTensors - tensorsBefore})`,
    );
    optimizer.dispose();
    tf.dispose([x, labels]);
    model.dispose();
  }
}
