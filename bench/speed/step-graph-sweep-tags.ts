/**
 * How much of the char transformer's AdaHessian step graph belongs to its layer norms, forward,
 * gradient AND sweep, measured in the model rather than projected: what a rewrite of the whole
 * layer norm (bench/speed/layer-norm-hvp.ts has its arithmetic) would replace.
 *
 * How: while the step is recorded (capture.ts's `record`, as step graphs record it), every tape
 * node's gradient function is wrapped (through the engine's addTapeNode, which
 * src/autodiff/tape-order.ts patches the same way) so that each recorded call made inside it is
 * tagged with the call that made the tape node. The first backward pass (the gradient) runs the
 * forward nodes' gradients, the sweep (src/autodiff/backprop.ts) runs both the forward nodes'
 * and the gradient's. Untagged calls after the forward pass are the accumulating Adds between
 * them, and the gradients of tape nodes whose own call is not found (the engine's clones of
 * saved outputs, added under their scope's name: the count is printed), so the layer norms'
 * share printed is a lower bound. With tf.layers' layer norm (--stock-layers), a forward call
 * belongs to a layer norm when it is a FusedBatchNorm or one of the Mean, Sub, Square, Tile,
 * Reshape calls it reads back to the layer norm's input; a gradient or sweep call, when its tag
 * does, transitively. With the compact layer norm (the default since the tenth session,
 * src/autodiff/gradients/layer-norm.ts), which records no FusedBatchNorm: every call made inside
 * its scopes (adahessianLayerNorm, the forward; adahessianLayerNormGrad, its gradient, made again
 * by the sweep), and every call tagged with one of its tape nodes (the gradient node's own
 * gradient, in the sweep). The graph is then built and profiled as step-graph-profile.ts does,
 * and each node's time credited by its call.
 * This tagging is also the mechanism a sweep-level layer-norm rewrite would need.
 *
 *   npx tsx bench/speed/step-graph-sweep-tags.ts [--runs 6] [--context 32 --batch 16]
 *   npx tsx bench/speed/step-graph-sweep-tags.ts --stock-layers   # tf.layers' layer norm, GELU
 */
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { buildCharTransformer, softmaxCrossEntropy, useBackend } from '../../src/index.js';
import { enableNativeKernels } from '../../src/native/index.js';
import { loadOnnxRuntime } from '../../src/native/onnx-runtime.js';
import { encodeOnnxModel } from '../../src/native/onnx-model.js';
import { record } from '../../src/native/step-graph/capture.js';
import { buildStepGraph } from '../../src/native/step-graph/build.js';
import { privateEngine, type TapeNode } from '../../src/autodiff/engine.js';
import { installSecondOrderSupport } from '../../src/autodiff/install.js';
import {
  LAYER_NORM_GRADIENT_NODE,
  LAYER_NORM_NODE,
} from '../../src/autodiff/gradients/layer-norm.js';
import { hutchinsonDiagonal, drawProbes } from '../../src/optimizers/hutchinson.js';
import { RademacherGenerator } from '../../src/optimizers/rademacher.js';
import { arg } from './args.js';

tf.env().set('IS_TEST', false);
const context = Number(arg('context', '64'));
const batch = Number(arg('batch', '64'));
const runs = Number(arg('runs', '6'));
const vocab = 96;

await useBackend('cpu');
const native = enableNativeKernels({ threads: 1, stepGraphs: false });
if (!native.enabled) throw new Error(`native kernels unavailable: ${native.reason}`);
const stockLayers = process.argv.includes('--stock-layers');
const model = buildCharTransformer({
  vocabSize: vocab,
  contextLength: context,
  seed: 1,
  compactGradients: !stockLayers,
});
const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
const ids = tf.randomUniform([batch, context], 0, vocab, 'int32', 1);
const y = tf.tidy(() => tf.oneHot(tf.randomUniform([batch, context], 0, vocab, 'int32', 2), vocab));
const probes = drawProbes(new RademacherGenerator(1), vars, 1);

// The tags: per recorded call, the tape node (an entry: when it was added, its kernel) whose
// gradient function made it; resolved to the node's own call once the recording is done.
installSecondOrderSupport(); // its own addTapeNode patches go first (the order they run in)
const engine = privateEngine();
const entries: { count: number; kernel: string }[] = [];
const entryOf: number[] = [];
let count: () => number = () => 0;
let forwardEnd = 0;
const original = engine.addTapeNode;
engine.addTapeNode = function (this: typeof engine, ...args: Parameters<typeof original>) {
  const entry = entries.push({ count: count(), kernel: args[0] }) - 1;
  original.apply(this, args);
  const outputs = args[2];
  const tape = this.state.activeTape;
  let node: TapeNode | undefined;
  for (let k = (tape?.length ?? 0) - 1; k >= 0 && node == null; k--)
    if (tape![k]!.outputs[0] === outputs[0]) node = tape![k];
  if (node?.gradient == null) return;
  const gradient = node.gradient;
  const tagged =
    <R>(f: () => R) =>
    (): R => {
      const start = count();
      try {
        return f();
      } finally {
        for (let i = start; i < count(); i++) entryOf[i] ??= entry;
      }
    };
  node.gradient = (dys: tf.Tensor[]) => {
    const fns: Record<string, () => tf.Tensor> = tagged(() => gradient(dys))();
    return Object.fromEntries(Object.entries(fns).map(([k, f]) => [k, tagged(f)]));
  };
};

// The compact layer norm's calls: those made while one of its named scopes is open (tf.tidy's
// name), as [first, end) ranges of the recorded calls.
const compactNames = new Set([LAYER_NORM_NODE, LAYER_NORM_GRADIENT_NODE]);
const scoped = engine as unknown as {
  startScope(name?: string): void;
  endScope(result?: unknown): void;
  state: { activeScope: { name: string } | null };
};
const [originalStart, originalEnd] = [scoped.startScope, scoped.endScope];
const openAt: (number | null)[] = [];
const compactRanges: [number, number][] = [];
scoped.startScope = function (this: typeof scoped, name?: string) {
  openAt.push(name != null && compactNames.has(name) ? count() : null);
  originalStart.call(this, name);
};
scoped.endScope = function (this: typeof scoped, result?: unknown) {
  const start = openAt.pop();
  if (start != null) compactRanges.push([start, count()]);
  originalEnd.call(this, result);
};

let probeRead = 0;
const { result, recording, refOf } = record((callCount) => {
  count = callCount;
  const est = hutchinsonDiagonal(
    () => {
      const loss = softmaxCrossEntropy(y, model.apply(ids) as tf.Tensor) as tf.Scalar;
      forwardEnd = count();
      return loss;
    },
    vars,
    { probes, checkFinite: false },
  );
  return [est.loss, ...est.grads, ...est.diagonal];
});
engine.addTapeNode = original;
[scoped.startScope, scoped.endScope] = [originalStart, originalEnd];
const calls = recording.calls;
// An entry's own call: the latest of its kernel before it was added (the engine's clones of
// saved outputs, as Identity calls, come between).
const makerOf = entries.map(({ count: c, kernel }) => {
  let k = c - 1;
  while (k >= 0 && calls[k]!.kernelName !== kernel) k--;
  return k;
});
const tagOf = calls.map((_, i) => (entryOf[i] == null ? -1 : makerOf[entryOf[i]!]!));
const probeIds = new Set(probes.flat().map((p) => p.dataId as object));
probeRead = calls.findIndex(
  (c, i) =>
    i >= forwardEnd &&
    c.inputs.some(
      (inp) =>
        inp.ref.kind === 'external' && probeIds.has(recording.externals[inp.ref.index]!.dataId!),
    ),
);
const phaseOf = (i: number) => (i < forwardEnd ? 'forward' : i < probeRead ? 'gradient' : 'sweep');

// Layer-norm calls of the forward: each FusedBatchNorm and what it reads back through the
// moments' kernels (Mean, Sub, Square, Tile, Reshape), up to the layer norm's input.
const producer = new Map<number, number>();
calls.forEach((c, i) => c.outputs.forEach((v) => producer.set(v, i)));
// tf.layers' layer norm: mean = Mean(x), variance = Mean(Square(Sub(x, mean))), four Tiles,
// FusedBatchNorm(x, mean, variance, offset, scale), with Reshapes between; x is not followed.
const layerNorm = new Set<number>();
const follow = (k: number, inputIndex: number, p: number): boolean => {
  const [kernel, from] = [calls[k]!.kernelName, calls[p]!.kernelName];
  if (kernel === 'FusedBatchNorm') return inputIndex > 0;
  if (kernel === 'Sub') return inputIndex === 1;
  if (kernel === 'Mean') return from === 'Square' || from === 'Reshape';
  return ['Tile', 'Reshape', 'Square', 'Mean', 'Sub'].includes(from);
};
calls.forEach((c, i) => {
  if (c.kernelName !== 'FusedBatchNorm' || i >= forwardEnd) return;
  const stack = [i];
  while (stack.length > 0) {
    const k = stack.pop()!;
    if (layerNorm.has(k)) continue;
    layerNorm.add(k);
    calls[k]!.inputs.forEach((inp, j) => {
      if (inp.ref.kind !== 'value') return;
      const p = producer.get(inp.ref.index);
      if (p != null && p > i - 40 && follow(k, j, p)) stack.push(p);
    });
  }
});
// The forward's reshapes of a layer norm's output (its 4-D result back to [B, T, d]).
for (let i = 0; i < forwardEnd; i++) {
  const inp = calls[i]!.inputs[0];
  if (calls[i]!.kernelName === 'Reshape' && inp?.ref.kind === 'value') {
    const p = producer.get(inp.ref.index);
    if (p != null && calls[p]!.kernelName === 'FusedBatchNorm') layerNorm.add(i);
  }
}
// The compact layer norm's: in its scopes, or tagged with one of its tape nodes.
for (const [start, end] of compactRanges) for (let i = start; i < end; i++) layerNorm.add(i);
calls.forEach((_, i) => {
  if (entryOf[i] != null && compactNames.has(entries[entryOf[i]!]!.kernel)) layerNorm.add(i);
});
// Gradient and sweep calls: tagged (transitively) with a layer-norm call.
for (let i = forwardEnd; i < calls.length; i++) {
  if (tagOf[i]! >= 0 && layerNorm.has(tagOf[i]!)) layerNorm.add(i);
}
const tagged = tagOf.filter((t, i) => i >= forwardEnd && t >= 0).length;
console.log(
  `char transformer (${stockLayers ? "tf.layers' layer norm, GELU" : 'compact layer norm, GELU'}), ` +
    `context ${context}, batch ${batch}: ${calls.length} calls (forward ${forwardEnd}, ` +
    `gradient ${probeRead - forwardEnd}, sweep ${calls.length - probeRead}); ${tagged} of the ` +
    `${calls.length - forwardEnd} after the forward tagged; layer norms' calls: ` +
    ['forward', 'gradient', 'sweep']
      .map((p) => `${p} ${[...layerNorm].filter((i) => phaseOf(i) === p).length}`)
      .join(', ') +
    `; ${makerOf.filter((m) => m < 0).length} tape nodes without their call`,
);

// Build and profile as step-graph-profile.ts does.
const outputs = result.map((t) => ({ ref: refOf(t)!, shape: [...t.shape] }));
const inputIds = new Set([...vars, ...probes.flat()].map((t) => t.dataId as object));
for (const ext of recording.externals) if (inputIds.has(ext.dataId!)) delete ext.values;
const built = buildStepGraph(recording, outputs);
const runtime = loadOnnxRuntime()!;
const dir = mkdtempSync(join(tmpdir(), 'sweep-tags-'));
const Tensor = runtime.Tensor as unknown as new (t: string, d: unknown, s: number[]) => object;
const bytes = encodeOnnxModel(built.graph);
const session = new runtime.binding.binding.InferenceSession() as unknown as {
  loadModel(b: ArrayBuffer, o: number, l: number, options: object): void;
  run(feeds: object, fetches: object, options: object): void;
  endProfiling(): string;
};
session.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
  enableProfiling: true,
  profileFilePrefix: join(dir, 'p'),
  logSeverityLevel: 3,
  enableCpuMemArena: true,
  enableMemPattern: false,
  extra: { session: { intra_op: { allow_spinning: '0' } } },
});
const backend = tf.backend() as unknown as { readSync(id: object): unknown };
const feeds: Record<string, object> = {};
built.inputExternals.forEach((e) => {
  const ext = recording.externals[e]!;
  feeds[`e${e}`] = new Tensor(ext.dtype, backend.readSync(ext.dataId!), ext.shape);
});
const fetches: Record<string, object> = {};
outputs.forEach(
  (o, k) =>
    (fetches[`out${k}`] = new Tensor(
      'float32',
      new Float32Array(o.shape.reduce((a, b) => a * b, 1)),
      o.shape,
    )),
);
for (let r = 0; r < runs + 1; r++) session.run(feeds, fetches, {});
session.endProfiling();
type Event = { cat: string; name: string; dur: number; ts: number };
const file = readdirSync(dir).find((f) => f.endsWith('.json'))!;
const events = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Event[];
const firstRun = events.find((e) => e.cat === 'Session' && e.name === 'model_run')!;
const sums = new Map<string, number>();
let total = 0;
for (const e of events) {
  if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts <= firstRun.ts + firstRun.dur)
    continue;
  const index = Number(/^n(\d+)/.exec(e.name)?.[1] ?? -1);
  const call = index >= 0 ? (built.nodeCalls[index] ?? -1) : -1;
  if (call < 0) continue;
  const ms = e.dur / 1000 / runs;
  const key = `${phaseOf(call)} ${layerNorm.has(call) ? 'layer norm' : tagOf[call]! < 0 && call >= forwardEnd ? 'accumulation (untagged)' : 'rest'}`;
  sums.set(key, (sums.get(key) ?? 0) + ms);
  total += ms;
}
console.log(`node time ${total.toFixed(1)} ms per run (profiler on), ${runs} runs:`);
for (const [k, v] of [...sums].sort((a, b) => b[1] - a[1]))
  console.log(
    `  ${v.toFixed(1).padStart(6)} ms  ${((100 * v) / total).toFixed(1).padStart(5)} %  ${k}`,
  );
const ln = [...sums].filter(([k]) => k.endsWith('layer norm')).reduce((a, [, v]) => a + v, 0);
console.log(`layer norms, all phases: ${ln.toFixed(1)} ms, ${((100 * ln) / total).toFixed(1)} %`);
tf.dispose([ids, y, ...probes.flat(), ...result]);
