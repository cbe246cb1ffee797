/**
 * What a hand-written layer-norm gradient would buy a first-order step graph (not built: it
 * changes the rounding): tf.layers' layer norm on [64, 64, 64] (the char transformer's), its
 * loss sum(y * dy) and gradients recorded and built as the step graphs build them, against the
 * same loss and gradients written by hand in ONNX (x^ = (x - mean) * rstd; dx = rstd * (g -
 * mean(g) - x^ * mean(g * x^)) with g = dy * gamma), run alternately in ONNX Runtime on one
 * thread. Prints both medians, the full-size element-wise node counts and the largest
 * difference between their outputs (float32 rounding, not bit for bit).
 *
 *   npx tsx bench/speed/layer-norm-grad.ts [--runs 40] [--flush]
 */
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/index.js';
import { type OnnxGraph, type OnnxNode } from '../../src/native/onnx-model.js';
import { record } from '../../src/native/step-graph/capture.js';
import { buildStepGraph } from '../../src/native/step-graph/build.js';
import { arg } from './args.js';
import { openSession, Tensor } from './ort-session.js';

tf.env().set('IS_TEST', false);
const runs = Number(arg('runs', '40'));
const flush = process.argv.includes('--flush');
const junk = new Float32Array(flush ? 32 << 20 : 1);
const [B, T, D] = [64, 64, 64];
const EPS = 1e-3; // tf.layers.layerNormalization's default epsilon

await useBackend('cpu');

const ln = tf.layers.layerNormalization({ axis: -1, epsilon: EPS });
ln.build([B, T, D]);
const x = tf.tidy(() => tf.variable(tf.randomNormal([B, T, D], 0, 1, 'float32', 1)));
const dy = tf.randomNormal([B, T, D], 0, 1, 'float32', 2);
tf.tidy(() => {
  // Gamma and beta away from 1 and 0, so that their gradients are exercised.
  const [gamma, beta] = ln.trainableWeights.map((w) => w.read() as tf.Variable);
  gamma!.assign(tf.randomUniform([D], 0.5, 1.5, 'float32', 3));
  beta!.assign(tf.randomNormal([D], 0, 0.1, 'float32', 4));
});
const vars = [x, ...ln.trainableWeights.map((w) => w.read() as tf.Variable)];
const { result, recording, refOf } = record(() => {
  const { value, grads } = tf.variableGrads(
    () => tf.sum(tf.mul(ln.apply(x) as tf.Tensor, dy)) as tf.Scalar,
    vars,
  );
  return [value, ...vars.map((v) => grads[v.name]!)];
});
const outputs = result.map((t) => ({ ref: refOf(t)!, shape: [...t.shape] }));
const inputIds = new Set(vars.map((t) => t.dataId as object));
for (const ext of recording.externals) if (inputIds.has(ext.dataId!)) delete ext.values;
const built = buildStepGraph(recording, outputs);

// The hand-written graph: inputs x [B*T, D], gamma, beta, dy; outputs loss, dx, dgamma, dbeta.
const n = (op: string, inputs: string[], out: string, attributes?: OnnxNode['attributes']) =>
  ({ opType: op, inputs, outputs: [out], ...(attributes ? { attributes } : {}) }) as OnnxNode;
const rows = { axes: { kind: 'ints' as const, value: [1] } };
const f32 = (name: string, v: number) => ({
  name,
  dims: [],
  dtype: 'float32' as const,
  raw: new Uint8Array(Float32Array.of(v).buffer),
});
const i64 = (name: string, v: number[]) => ({
  name,
  dims: [v.length],
  dtype: 'int64' as const,
  raw: new Uint8Array(BigInt64Array.from(v.map(BigInt)).buffer),
});
const byHand: OnnxGraph = {
  nodes: [
    n('ReduceMean', ['x'], 'mean', rows),
    n('Sub', ['x', 'mean'], 'c'),
    n('Mul', ['c', 'c'], 'c2'),
    n('ReduceMean', ['c2'], 'var', rows),
    n('Add', ['var', 'eps'], 'varEps'),
    n('Sqrt', ['varEps'], 'std'),
    n('Reciprocal', ['std'], 'rstd'),
    n('Mul', ['c', 'rstd'], 'xhat'),
    n('Mul', ['xhat', 'gamma'], 'scaled'),
    n('Add', ['scaled', 'beta'], 'y'),
    n('Mul', ['y', 'dy'], 'ydy'),
    n('ReduceSum', ['ydy'], 'loss', { keepdims: { kind: 'int', value: 0 } }),
    n('ReduceSum', ['dy', 'axis0'], 'dbeta', { keepdims: { kind: 'int', value: 0 } }),
    n('Mul', ['dy', 'xhat'], 'dyx'),
    n('ReduceSum', ['dyx', 'axis0'], 'dgamma', { keepdims: { kind: 'int', value: 0 } }),
    n('Mul', ['dy', 'gamma'], 'g'),
    n('ReduceMean', ['g'], 'm1', rows),
    n('Mul', ['g', 'xhat'], 'gx'),
    n('ReduceMean', ['gx'], 'm2', rows),
    n('Mul', ['xhat', 'm2'], 'xm2'),
    n('Sub', ['g', 'm1'], 'g1'),
    n('Sub', ['g1', 'xm2'], 'g2'),
    n('Mul', ['g2', 'rstd'], 'dx'),
  ],
  inputs: [
    { name: 'x', shape: [B * T, D] },
    { name: 'gamma', shape: [D] },
    { name: 'beta', shape: [D] },
    { name: 'dy', shape: [B * T, D] },
  ],
  outputs: [
    { name: 'loss', shape: [] },
    { name: 'dx', shape: [B * T, D] },
    { name: 'dgamma', shape: [D] },
    { name: 'dbeta', shape: [D] },
  ],
  tensorInitializers: [f32('eps', EPS), i64('axis0', [0])],
};

const backend = tf.backend() as unknown as { readSync(id: object): unknown };
const asTensor = (t: tf.Tensor, shape = t.shape) => new Tensor('float32', t.dataSync(), [...shape]);

const recorded = openSession(built.graph);
const recordedFeeds: Record<string, object> = {};
for (const e of built.inputExternals) {
  const ext = recording.externals[e]!;
  recordedFeeds[`e${e}`] = new Tensor(ext.dtype, backend.readSync(ext.dataId!), ext.shape);
}
const hand = openSession(byHand);
const handFeeds = {
  x: asTensor(x, [B * T, D]),
  gamma: asTensor(vars[1]!),
  beta: asTensor(vars[2]!),
  dy: asTensor(dy, [B * T, D]),
};
const sizes = outputs.map((o) => o.shape.reduce((a, b) => a * b, 1));
const got = [sizes.map((s) => new Float32Array(s)), sizes.map((s) => new Float32Array(s))];
const fetchesOf = (k: number, names: string[]) =>
  Object.fromEntries(
    names.map((name, i) => [name, new Tensor('float32', got[k]![i], [sizes[i]!])]),
  );
const cases = [
  { s: recorded, feeds: recordedFeeds, names: built.graph.outputs.map((o) => o.name) },
  { s: hand, feeds: handFeeds, names: ['loss', 'dx', 'dgamma', 'dbeta'] },
];
const times: number[][] = [[], []];
// Process CPU time too: less noisy than wall time on a loaded machine.
const cpu: number[][] = [[], []];
for (let r = 0; r < runs + 3; r++) {
  cases.forEach((c, k) => {
    if (flush) junk.fill(r + k);
    const fetches = fetchesOf(k, c.names);
    // Scalars as [1] and [B*T, D] as [B, T, D]: the same elements.
    for (const [i, name] of c.names.entries())
      (fetches as Record<string, object>)[name] = new Tensor(
        'float32',
        got[k]![i],
        k === 0 ? [...outputs[i]!.shape] : [...byHand.outputs[i]!.shape],
      );
    const t = performance.now();
    const u = process.cpuUsage();
    c.s.run(c.feeds, fetches, {});
    const used = process.cpuUsage(u);
    if (r >= 3) times[k]!.push(performance.now() - t);
    if (r >= 3) cpu[k]!.push((used.user + used.system) / 1000);
  });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const fullSize = (g: OnnxGraph, shapes: Map<string, number>) =>
  g.nodes.filter(
    (node) =>
      !['Reshape', 'Identity', 'ReduceMean', 'ReduceSum', 'MatMul'].includes(node.opType) &&
      (shapes.get(node.outputs[0]!) ?? 0) >= B * T * D,
  ).length;
const recordedSizes = new Map<string, number>();
recording.values.forEach((v, i) =>
  recordedSizes.set(
    `v${i}`,
    v.shape.reduce((a, b) => a * b, 1),
  ),
);
let largest = 0;
got[0]!.forEach((a, i) => {
  const scale = a.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-30);
  a.forEach((v, j) => (largest = Math.max(largest, Math.abs(v - got[1]![i]![j]!) / scale)));
});
console.log(
  `layer norm [${B}, ${T}, ${D}], loss and gradients, 1 thread, ${runs} runs${flush ? ', cache flushed' : ''}:\n` +
    `  as recorded and built: ${built.nodeCount} nodes (${fullSize(built.graph, recordedSizes)} recorded full-size element-wise outputs), median ${median(times[0]!).toFixed(3)} ms, min ${Math.min(...times[0]!).toFixed(3)}\n` +
    `  by hand:               ${byHand.nodes.length} nodes, median ${median(times[1]!).toFixed(3)} ms, min ${Math.min(...times[1]!).toFixed(3)}\n` +
    `  process CPU medians ${median(cpu[0]!).toFixed(3)} and ${median(cpu[1]!).toFixed(3)} ms\n` +
    `  by hand / recorded ${(median(times[1]!) / median(times[0]!)).toFixed(3)} (CPU time ${(median(cpu[1]!) / median(cpu[0]!)).toFixed(3)}); largest difference ${largest.toExponential(2)} of each output's largest value`,
);
tf.dispose([...result, x, dy]);
ln.weights.forEach((w) => w.dispose());
