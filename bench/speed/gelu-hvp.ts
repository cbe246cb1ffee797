/**
 * What a hand-written GELU would buy an AdaHessian step graph (not built into the graphs: it
 * changes the rounding, and lr-text's results are pinned to this graph's): tf.layers' 'gelu'
 * (erf form) on [64, 64, 128] (the char transformer's feed-forward hidden layer), with the loss
 * 0.5 sum(c y^2), the loss, gradient and Hutchinson diagonal z * Hz recorded
 * (hutchinsonDiagonal, as AdaHessian's step graphs record it: the sweep differentiates TF.js's
 * gradient ops) and built as the step graphs build them, against the same outputs written by
 * hand in ONNX, run alternately on one ONNX Runtime thread. By hand, with z = x / sqrt 2,
 * cdf = 0.5 (1 + erf(z)), phi = exp(C - z^2) the normal density (C = ln(1 / sqrt(2 pi))):
 *   y = x cdf,  dy = c y,  dx = dy k with k = cdf + x phi,
 *   Hz = z_x (c k^2 + dy phi (2 - x^2))   (GELU acts element by element: H is diagonal)
 * Prints both medians (wall and process CPU time), the node counts and the largest difference
 * between the outputs, relative to each output's largest value (float32 rounding, not bit for
 * bit).
 *
 *   npx tsx bench/speed/gelu-hvp.ts [--runs 40] [--flush] [--batch 16 --context 32]
 *   npx tsx bench/speed/gelu-hvp.ts --compact   # recorded: geluErf (src/autodiff/gradients/gelu.ts)
 */
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/index.js';
import { geluErf } from '../../src/autodiff/gradients/gelu.js';
import { type OnnxGraph, type OnnxNode } from '../../src/native/onnx-model.js';
import { buildStepGraph } from '../../src/native/step-graph/build.js';
import { recordHutchinsonStep } from '../../test/native/step-graph/helpers.js';
import { arg } from './args.js';
import { openSession, Tensor } from './ort-session.js';

tf.env().set('IS_TEST', false);
const runs = Number(arg('runs', '40'));
const flush = process.argv.includes('--flush');
const junk = new Float32Array(flush ? 32 << 20 : 1);
const [B, T, D] = [Number(arg('batch', '64')), Number(arg('context', '64')), 128];

await useBackend('cpu');

// --compact: the char transformer's GELU since the tenth session, its gradients as nodes.
const gelu = process.argv.includes('--compact')
  ? { apply: geluErf }
  : tf.layers.activation({ activation: 'gelu' });
const x = tf.tidy(() => tf.variable(tf.randomNormal([B, T, D], 0, 1.5, 'float32', 1)));
const c = tf.randomUniform([B, T, D], 0.5, 1.5, 'float32', 2);
const vars = [x];
// As step-graph.ts records it: variables and probes are graph inputs.
const { result, recording, outputs, probes } = recordHutchinsonStep(
  () =>
    tf.tidy(() => {
      const y = gelu.apply(x) as tf.Tensor;
      return tf.mul(0.5, tf.sum(tf.mul(c, tf.mul(y, y)))) as tf.Scalar;
    }),
  vars,
);
const built = buildStepGraph(recording, outputs);

// The hand-written graph. Inputs: x, c and the probe zx as [B*T, D]. Outputs: loss, dx, z * Hz.
const n = (op: string, inputs: string[], out: string, attributes?: OnnxNode['attributes']) =>
  ({ opType: op, inputs, outputs: [out], ...(attributes ? { attributes } : {}) }) as OnnxNode;
const all = { keepdims: { kind: 'int' as const, value: 0 } };
const f32 = (name: string, v: number) => ({
  name,
  dims: [],
  dtype: 'float32' as const,
  raw: new Uint8Array(Float32Array.of(v).buffer),
});
const byHand: OnnxGraph = {
  nodes: [
    // forward and loss, as tf.layers' 'gelu': z = x / sqrt 2, y = x 0.5 (1 + erf(z))
    n('Div', ['x', 'sqrt2'], 'z'),
    n('Erf', ['z'], 'erf'),
    n('Add', ['erf', 'one'], 's'),
    n('Mul', ['s', 'half'], 'cdf'),
    n('Mul', ['x', 'cdf'], 'y'),
    n('Mul', ['c', 'y'], 'dy'),
    n('Mul', ['dy', 'y'], 'cyy'),
    n('ReduceSum', ['cyy'], 'sum', all),
    n('Mul', ['sum', 'half'], 'loss'),
    // gradient: dx = dy k, k = cdf + x phi(x), phi(x) = exp(C - z^2)
    n('Mul', ['z', 'z'], 'zz'),
    n('Sub', ['C', 'zz'], 'ce'),
    n('Exp', ['ce'], 'phi'),
    n('Mul', ['x', 'phi'], 'xphi'),
    n('Add', ['cdf', 'xphi'], 'k'),
    n('Mul', ['dy', 'k'], 'dx'),
    // along the probe: Hz = zx (c k^2 + dy phi (2 - x^2)) = zx (c k k + 2 dy phi (1 - z^2))
    n('Mul', ['c', 'k'], 'ck'),
    n('Mul', ['ck', 'k'], 'ckk'),
    n('Sub', ['one', 'zz'], 'u1'),
    n('Mul', ['dy', 'phi'], 'u2'),
    n('Mul', ['u2', 'u1'], 'u3'),
    n('Mul', ['u3', 'two'], 'u4'),
    n('Add', ['ckk', 'u4'], 'h'),
    n('Mul', ['zx', 'h'], 'Hzx'),
    n('Mul', ['zx', 'Hzx'], 'diagx'),
  ],
  inputs: [
    { name: 'x', shape: [B * T, D] },
    { name: 'c', shape: [B * T, D] },
    { name: 'zx', shape: [B * T, D] },
  ],
  outputs: ['loss', 'dx', 'diagx'].map((name) => ({
    name,
    shape: name === 'loss' ? [] : [B * T, D],
  })),
  tensorInitializers: [
    f32('sqrt2', Math.SQRT2),
    f32('one', 1),
    f32('two', 2),
    f32('half', 0.5),
    f32('C', Math.log(1 / Math.sqrt(2 * Math.PI))),
  ],
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
const [zx] = probes[0]!;
const handFeeds = {
  x: asTensor(x, [B * T, D]),
  c: asTensor(c, [B * T, D]),
  zx: asTensor(zx!, [B * T, D]),
};
const sizes = outputs.map((o) => o.shape.reduce((a, b) => a * b, 1));
const got = [sizes.map((s) => new Float32Array(s)), sizes.map((s) => new Float32Array(s))];
const cases = [
  { s: recorded, feeds: recordedFeeds, names: built.graph.outputs.map((o) => o.name) },
  { s: hand, feeds: handFeeds, names: byHand.outputs.map((o) => o.name) },
];
const times: number[][] = [[], []];
// Process CPU time too: less noisy than wall time on a loaded machine.
const cpu: number[][] = [[], []];
for (let r = 0; r < runs + 3; r++) {
  cases.forEach((cs, k) => {
    if (flush) junk.fill(r + k);
    // The same elements under each graph's shapes (scalars, [B, T, D] as [B*T, D]).
    const fetches = Object.fromEntries(
      cs.names.map((name, i) => [
        name,
        new Tensor(
          'float32',
          got[k]![i],
          k === 0 ? [...outputs[i]!.shape] : [...byHand.outputs[i]!.shape],
        ),
      ]),
    );
    const t = performance.now();
    const u = process.cpuUsage();
    cs.s.run(cs.feeds, fetches, {});
    const used = process.cpuUsage(u);
    if (r >= 3) times[k]!.push(performance.now() - t);
    if (r >= 3) cpu[k]!.push((used.user + used.system) / 1000);
  });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const names = ['loss', 'dx', 'z*Hz x'];
const differences = got[0]!.map((a, i) => {
  const scale = a.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-30);
  let largest = 0;
  a.forEach((v, j) => (largest = Math.max(largest, Math.abs(v - got[1]![i]![j]!) / scale)));
  return `${names[i]} ${largest.toExponential(1)}`;
});
console.log(
  `GELU on [${B}, ${T}, ${D}], loss 0.5 sum(c y^2): loss, gradient and Hutchinson diagonal, 1 thread, ${runs} runs${flush ? ', cache flushed' : ''}:\n` +
    `  as recorded and built: ${built.nodeCount} nodes, median ${median(times[0]!).toFixed(3)} ms, min ${Math.min(...times[0]!).toFixed(3)}\n` +
    `  by hand:               ${byHand.nodes.length} nodes, median ${median(times[1]!).toFixed(3)} ms, min ${Math.min(...times[1]!).toFixed(3)}\n` +
    `  process CPU medians ${median(cpu[0]!).toFixed(3)} and ${median(cpu[1]!).toFixed(3)} ms\n` +
    `  by hand / recorded ${(median(times[1]!) / median(times[0]!)).toFixed(3)} (CPU time ${(median(cpu[1]!) / median(cpu[0]!)).toFixed(3)})\n` +
    `  largest differences, relative to each output's largest value: ${differences.join(', ')}`,
);
tf.dispose([...result, x, c, ...probes.flat()]);
