/**
 * Which node order ONNX Runtime runs a step graph in, and how many bytes of intermediates that
 * order keeps alive. ONNX Runtime's sequential executor runs its DEFAULT order: a depth-first
 * post-order from the graph's leaves (graph_viewer.cc, Graph::ReverseDFSFrom), the highest
 * node index (its place in the model) explored first. So the order build.ts emits only breaks
 * ties; it cannot impose the tape order. This script records the AdaHessian step (ResNet-20
 * batch 64 with batch norm training, or the char transformer), builds its graph, reads ONNX
 * Runtime's order and each node's output bytes from a profile (optimisation off, so that the
 * profile's nodes are ours), checks that a JS copy of that depth-first sort gives the same
 * order, and prints the peak of live intermediate bytes for: the tape order (as op by op would
 * run it), ONNX Runtime's order of the graph as built, and its order under other node numberings.
 *
 *   npx tsx bench/speed/node-order.ts --model resnet20
 *   npx tsx bench/speed/node-order.ts --model transformer --context 32 --batch 16
 *   npx tsx bench/speed/node-order.ts --model resnet20 --search 60   # a hill climb over numberings
 *   npx tsx bench/speed/node-order.ts --model resnet20 --measure built   # ONNX Runtime's RSS, one
 *   npx tsx bench/speed/node-order.ts --model resnet20 --measure 'cone bytes, biggest first'
 *
 * Findings: docs/PERFORMANCE.md, eighth session, ResNet-20's memory by default, second task.
 */
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  buildCharTransformer,
  buildResNet20,
  buildSmallCnn,
  softmaxCrossEntropy,
  useBackend,
} from '../../src/index.js';
import { enableNativeKernels } from '../../src/native/index.js';
import { loadOnnxRuntime } from '../../src/native/onnx-runtime.js';
import { encodeOnnxModel, type OnnxGraph } from '../../src/native/onnx-model.js';
import { buildStepGraph } from '../../src/native/step-graph/build.js';
import { recordHutchinsonStep } from '../../test/native/step-graph/helpers.js';
import { arg } from './args.js';

tf.env().set('IS_TEST', false);
const modelName = arg('model', 'resnet20');
if (modelName !== 'resnet20' && modelName !== 'transformer' && modelName !== 'small-cnn')
  throw new Error(`--model: '${modelName}'; expected resnet20, small-cnn or transformer`);
const resnet = modelName === 'resnet20';
const cnn = resnet || modelName === 'small-cnn';
const context = Number(arg('context', '64'));
const vocab = 96;
const batch = Number(arg('batch', modelName === 'small-cnn' ? '128' : '64'));
await useBackend('cpu');
// --log 0: ONNX Runtime's verbose log (its arena's extensions), set before its first session.
if (arg('log', '3') === '0') {
  // onnxruntime-node reads the CommonJS copy of onnxruntime-common's env.
  const require = (await import('node:module')).createRequire(import.meta.url);
  (require('onnxruntime-common') as { env: { logLevel: string } }).env.logLevel = 'verbose';
}
enableNativeKernels({ threads: 1, stepGraphs: false });
const model = resnet
  ? buildResNet20({ inputShape: [28, 28, 1], seed: 1 })
  : cnn
    ? buildSmallCnn({ seed: 1 })
    : buildCharTransformer({ vocabSize: vocab, contextLength: context, dModel: 64, seed: 1 });
const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
const x = cnn
  ? tf.randomUniform([batch, 28, 28, 1], 0, 1, 'float32', 1)
  : tf.randomUniform([batch, context], 0, vocab, 'int32', 1);
const classes = cnn ? 10 : vocab;
const y = tf.tidy(() =>
  tf.oneHot(tf.randomUniform(cnn ? [batch] : [batch, context], 0, classes, 'int32', 2), classes),
);
const { recording, outputs } = recordHutchinsonStep(
  () => softmaxCrossEntropy(y, model.apply(x, { training: resnet }) as tf.Tensor),
  vars,
);
const built = buildStepGraph(recording, outputs);
const graph = built.graph;
const n = graph.nodes.length;

const runtime = loadOnnxRuntime()!;
type Session = {
  loadModel(b: ArrayBuffer, o: number, l: number, options: object): void;
  run(feeds: object, fetches: object, options: object): void;
  endProfiling(): string;
};
const Tensor = runtime.Tensor as unknown as new (t: string, d: unknown, s: number[]) => object;
const backend = tf.backend() as unknown as { readSync(id: object): unknown };
const dir = mkdtempSync(join(tmpdir(), 'node-order-'));
const s = new runtime.binding.binding.InferenceSession() as unknown as Session;
const bytes = encodeOnnxModel(graph);
s.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'disabled',
  enableProfiling: true,
  profileFilePrefix: join(dir, 'p'),
  logSeverityLevel: 3,
});
const feeds: Record<string, object> = {};
built.inputExternals.forEach((e) => {
  const ext = recording.externals[e]!;
  feeds[`e${e}`] = new Tensor(ext.dtype, backend.readSync(ext.dataId!), ext.shape);
});
const fetches: Record<string, object> = {};
outputs.forEach((o, k) => {
  const size = o.shape.reduce((a, b) => a * b, 1);
  fetches[`out${k}`] = new Tensor('float32', new Float32Array(size), o.shape);
});
s.run(feeds, fetches, {});
s.endProfiling();
type Event = { cat: string; name: string; ts: number; args?: { output_size?: string } };
const file = readdirSync(dir).find((f) => f.endsWith('.json'))!;
const events = (JSON.parse(readFileSync(join(dir, file), 'utf8')) as Event[])
  .filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'))
  .sort((a, b) => a.ts - b.ts);
const ortOrder = events.map((e) => Number(/^n(\d+)_/.exec(e.name)![1]));
const outBytes = new Array<number>(n).fill(0);
for (const e of events)
  outBytes[Number(/^n(\d+)_/.exec(e.name)![1])] = Number(e.args?.output_size ?? 0);

/** Producer of each value name; consumers' node indices. */
const producer = new Map<string, number>();
graph.nodes.forEach((nd, i) => nd.outputs.forEach((o) => producer.set(o, i)));
const inputsOf = graph.nodes.map((nd) => [
  ...new Set(nd.inputs.map((v) => producer.get(v)).filter((p): p is number => p != null)),
]);
const consumers: number[][] = graph.nodes.map(() => []);
inputsOf.forEach((ins, i) => ins.forEach((p) => consumers[p]!.push(i)));
const graphOutputs = new Set(graph.outputs.map((o) => o.name));

/** ONNX Runtime's DEFAULT order for a numbering (rank[i]: node i's index in the model). */
function dfsOrder(rank: number[]): number[] {
  const leaves = [...Array(n).keys()].filter((i) => consumers[i]!.length === 0);
  leaves.sort((a, b) => rank[a]! - rank[b]!);
  const stack: [number, boolean][] = leaves.map((l) => [l, false]);
  const visited = new Array<boolean>(n).fill(false);
  const order: number[] = [];
  while (stack.length) {
    const [i, leave] = stack.pop()!;
    if (leave) {
      order.push(i);
      continue;
    }
    if (visited[i]) continue;
    visited[i] = true;
    stack.push([i, true]);
    const ins = [...inputsOf[i]!].sort((a, b) => rank[a]! - rank[b]!);
    for (const p of ins) if (!visited[p]) stack.push([p, false]);
  }
  return order;
}
/** Peak of the bytes of node outputs alive (made, a reader still to run), running `order`. */
function livePeak(order: number[]): number {
  const pos = new Array<number>(n);
  order.forEach((i, k) => (pos[i] = k));
  const freeAt: number[][] = order.map(() => []);
  for (let i = 0; i < n; i++) {
    if (graph.nodes[i]!.outputs.some((o) => graphOutputs.has(o))) continue;
    const last = Math.max(pos[i]!, ...consumers[i]!.map((c) => pos[c]!));
    freeAt[last]!.push(i);
  }
  let live = 0;
  let peak = 0;
  order.forEach((i, k) => {
    live += outBytes[i]!;
    peak = Math.max(peak, live);
    for (const f of freeAt[k]!) live -= outBytes[f]!;
  });
  return peak;
}
const identity = [...Array(n).keys()];
const asBuilt = dfsOrder(identity);
const same = asBuilt.length === ortOrder.length && asBuilt.every((v, k) => v === ortOrder[k]);
const mb = (b: number) => (b / 2 ** 20).toFixed(1);
console.log(
  `${modelName}, batch ${batch}: ${n} nodes; ONNX Runtime ran ${ortOrder.length}; the JS depth-first sort ${same ? 'gives the same order' : 'DIFFERS'}`,
);
console.log(
  `recorded values ${mb(recording.values.reduce((a, v) => a + 4 * v.shape.reduce((p, d) => p * d, 1), 0))} MB (step-graph.ts leaves ONNX Runtime's CSE out above 1,024); all node outputs ${mb(outBytes.reduce((a, b) => a + b, 0))} MB; live intermediates' peak, MB: tape order ${mb(livePeak(identity))}; ONNX Runtime's ${mb(livePeak(ortOrder))}`,
);
/** Bytes of each node's cone (itself and every node it depends on), by bitsets. */
const words = Math.ceil(n / 32);
const cones = graph.nodes.map(() => new Uint32Array(words));
const topo = dfsOrder(identity);
for (const i of topo) {
  const c = cones[i]!;
  c[i >> 5]! |= 1 << (i & 31);
  for (const p of inputsOf[i]!) {
    const pc = cones[p]!;
    for (let w = 0; w < words; w++) c[w]! |= pc[w]!;
  }
}
const coneBytes = cones.map((c) => {
  let b = 0;
  for (let i = 0; i < n; i++) if (c[i >> 5]! & (1 << (i & 31))) b += outBytes[i]!;
  return b;
});
const rankBy = (score: (i: number) => number) => {
  const sorted = [...identity].sort((a, b) => score(a) - score(b) || a - b);
  const rank = new Array<number>(n);
  sorted.forEach((i, k) => (rank[i] = k));
  return rank;
};
const variants: Record<string, number[]> = {
  reversed: identity.map((i) => n - 1 - i),
  'cone bytes, biggest first': rankBy((i) => coneBytes[i]!),
  'cone bytes, smallest first': rankBy((i) => -coneBytes[i]!),
  'own bytes, biggest first': rankBy((i) => outBytes[i]!),
  'own bytes, smallest first': rankBy((i) => -outBytes[i]!),
};
for (const [name, rank] of Object.entries(variants))
  console.log(`  numbering '${name}': its depth-first order ${mb(livePeak(dfsOrder(rank)))}`);
const searchSeconds = Number(arg('search', '0'));
if (searchSeconds > 0) {
  // How far a numbering can go: random swaps of two nodes' numbers, kept when the depth-first
  // order's peak does not rise (a hill climb from the numbering as built).
  const rank = [...identity];
  let best = livePeak(dfsOrder(rank));
  let seed = 1;
  const random = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  let tries = 0;
  let kept = 0;
  const until = performance.now() + searchSeconds * 1000;
  while (performance.now() < until) {
    const a = Math.floor(random() * n);
    const b = Math.floor(random() * n);
    [rank[a], rank[b]] = [rank[b]!, rank[a]!];
    const peak = livePeak(dfsOrder(rank));
    tries++;
    if (peak <= best) {
      if (peak < best) kept++;
      best = peak;
    } else [rank[a], rank[b]] = [rank[b]!, rank[a]!];
  }
  console.log(
    `  hill climb (${searchSeconds} s, ${tries} swaps tried, ${kept} improvements): ${mb(best)}`,
  );
}

/** The process's resident MB now (Linux). */
const rssMB = () =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
const measure = arg('measure', '');
if (measure) {
  // ONNX Runtime as step graphs run it (optimisation 'all', arena on, memory pattern off), the
  // nodes numbered by one of the variants: the RSS its loading and runs added, and the outputs'
  // bits (a hash: a numbering must not change them).
  const rank = measure === 'built' ? identity : variants[measure];
  if (rank == null)
    throw new Error(
      `--measure: '${measure}'; expected built or ${Object.keys(variants).join(', ')}`,
    );
  const nodes = new Array<OnnxGraph['nodes'][number]>(n);
  const byRank = [...identity].sort((a, b) => rank[a]! - rank[b]!);
  byRank.forEach((i, k) => (nodes[k] = graph.nodes[i]!));
  const permuted = encodeOnnxModel({ ...graph, nodes });
  // glibc's heap is at its high-water mark after the op-by-op capture: what the session adds to
  // RSS is its arena (and its kernels' own buffers).
  const before = rssMB();
  const m = new runtime.binding.binding.InferenceSession() as unknown as Session;
  m.loadModel(permuted.buffer as ArrayBuffer, permuted.byteOffset, permuted.byteLength, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: arg('opt', 'all'),
    logSeverityLevel: Number(arg('log', '3')),
    enableCpuMemArena: arg('arena', 'on') === 'on',
    enableMemPattern: false,
    extra: {
      session: { intra_op: { allow_spinning: '0' } },
      // --disable CommonSubexpressionElimination;...: ONNX Runtime's optimizers to leave out (a ';' list; with ',' it leaves out none).
      ...(arg('disable', '')
        ? { optimization: { disable_specified_optimizers: arg('disable', '') } }
        : {}),
    },
  });
  const loaded = rssMB() - before;
  const times: number[] = [];
  const added: number[] = [];
  const results: Float32Array[] = [];
  for (let r = 0; r < 4; r++) {
    const f: Record<string, object> = {};
    outputs.forEach((o, k) => {
      results[k] = new Float32Array(o.shape.reduce((a, b) => a * b, 1));
      f[`out${k}`] = new Tensor('float32', results[k], o.shape);
    });
    const t = performance.now();
    m.run(feeds, f, {});
    times.push(performance.now() - t);
    added.push(rssMB() - before);
  }
  let hash = 0;
  for (const x of results) for (const v of new Uint32Array(x.buffer)) hash = (hash * 31 + v) >>> 0;
  console.log(
    `measure '${measure}' (opt ${arg('opt', 'all')}, arena ${arg('arena', 'on')}, disabled '${arg('disable', '')}'): RSS added by loading ${loaded.toFixed(0)} MB, after each run ${added.map((a) => a.toFixed(0)).join(', ')} MB; ` +
      `runs ${times.map((t) => t.toFixed(0)).join(', ')} ms; outputs' hash ${hash.toString(16)}`,
  );
}

const ab = arg('ab', '');
if (ab) {
  // Two sessions of the graph as built (optimisation 'all', arena on, one thread), A with
  // ONNX Runtime's optimizers as they are, B without the comma-separated `--ab` ones; run
  // alternately (the machine's load drifts): medians of wall and process CPU time, and whether
  // their outputs are equal bit for bit.
  const open = (disabled: string) => {
    const m = new runtime.binding.binding.InferenceSession() as unknown as Session;
    m.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
      enableCpuMemArena: true,
      enableMemPattern: false,
      extra: {
        session: { intra_op: { allow_spinning: '0' } },
        ...(disabled ? { optimization: { disable_specified_optimizers: disabled } } : {}),
      },
    });
    const results = outputs.map((o) => new Float32Array(o.shape.reduce((a, b) => a * b, 1)));
    const f: Record<string, object> = {};
    outputs.forEach((o, k) => (f[`out${k}`] = new Tensor('float32', results[k], o.shape)));
    return { run: () => m.run(feeds, f, {}), results };
  };
  const sessions = [open(''), open(ab)];
  const wall = [[], []] as number[][];
  const cpu = [[], []] as number[][];
  const runs = Number(arg('runs', '6'));
  for (let r = 0; r < runs + 1; r++) {
    for (const [k, m] of sessions.entries()) {
      const t = performance.now();
      const c = process.cpuUsage();
      m.run();
      const used = process.cpuUsage(c);
      if (r >= 1) {
        wall[k]!.push(performance.now() - t);
        cpu[k]!.push((used.user + used.system) / 1000);
      }
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  let differing = 0;
  sessions[0]!.results.forEach((x, k) => {
    const a = new Uint32Array(x.buffer);
    const b = new Uint32Array(sessions[1]!.results[k]!.buffer);
    a.forEach((v, i) => (differing += v === b[i] ? 0 : 1));
  });
  const [wa, wb] = wall.map(median) as [number, number];
  const [ca, cb] = cpu.map(median) as [number, number];
  console.log(
    `A (as is): wall median ${wa.toFixed(1)} ms, CPU ${ca.toFixed(1)} ms; B (without ${ab}): wall ${wb.toFixed(1)} ms, CPU ${cb.toFixed(1)} ms; ` +
      `B / A wall ${(wb / wa).toFixed(3)}, CPU ${(cb / ca).toFixed(3)}; outputs differing in bits: ${differing}`,
  );
}
