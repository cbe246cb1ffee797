/**
 * What a hand-written layer norm would buy an AdaHessian step graph (not built into the graphs:
 * it changes the rounding, and lr-text's results are pinned to this graph's): tf.layers' layer
 * norm on [64, 64, 64] (the char transformer's), with the loss 0.5 sum(c y^2) so that its
 * Hessian runs through the layer norm's output as well as through its gradient, the loss,
 * gradients and Hutchinson diagonal z * Hz recorded (hutchinsonDiagonal, as AdaHessian's step
 * graphs record it: the sweep differentiates TF.js's gradient ops) and built as the step graphs
 * build them, against the same outputs written by hand in ONNX as a forward-over-reverse
 * product, run alternately on one ONNX Runtime thread. By hand, with x^ = (x - mean) r,
 * r = (var + eps)^-1/2, y = x^ gamma + beta, dy = c y, g = dy gamma, m2 = mean(g x^) (means
 * over the last axis, sums over the others):
 *   dx = r (g - mean(g) - x^ m2),  dgamma = sum(dy x^),  dbeta = sum(dy)
 * and along the probe (zx, zgamma, zbeta), R{.} the directional derivative:
 *   R{x^} = r (zx - mean(zx) - x^ mean(x^ zx)),  R{r} / r = s = -r mean(x^ zx)
 *   R{y} = R{x^} gamma + x^ zgamma + zbeta,  R{dy} = c R{y},  R{g} = R{dy} gamma + dy zgamma
 *   Hz_x = s dx + r (R{g} - mean(R{g}) - R{x^} m2 - x^ mean(R{g} x^ + g R{x^}))
 *   Hz_gamma = sum(R{dy} x^ + dy R{x^}),  Hz_beta = sum(R{dy})
 * and, third, as reverse over reverse: the block a sweep-level rewrite would put in place of the
 * sweep's calls for one layer norm. Given the adjoints u of dx, u_gamma of dgamma, u_beta of
 * dbeta (here the probe) and, later, ybar of y:
 *   w = r u,  gbar = w - mean(w) - x^ mean(w x^)            (g's adjoint)
 *   dybar = gbar gamma + u_gamma x^ + u_beta                  (dy's adjoint: on to the layer above)
 *   gammabar = sum(gbar dy) + sum(ybar x^),  betabar = sum(ybar)
 *   x^bar = u_gamma dy - w m2 - g mean(w x^) + ybar gamma,  rbar = sum_row(u (g - mean(g) - x^ m2))
 *   xbar = r (x^bar - mean(x^bar) - x^ mean(x^bar x^)) - rbar r^2 x^ / d
 * (here ybar = c dybar, and Hz = (xbar, gammabar, betabar)). Mutations checked: the last term's
 * sign flipped, or gamma read as beta in dybar, put the diagonal off by 1e-1 and more.
 * Prints the medians (wall and process CPU time), the node counts and the largest differences
 * from the recorded graph's outputs, relative to each output's largest value (float32 rounding,
 * not bit for bit).
 *
 *   npx tsx bench/speed/layer-norm-hvp.ts [--runs 40] [--flush] [--batch 16 --context 32]
 *   npx tsx bench/speed/layer-norm-hvp.ts --compact   # recorded: CompactLayerNormalization
 */
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/index.js';
import { CompactLayerNormalization } from '../../src/models/compact-gradient-layers.js';
import { type OnnxGraph, type OnnxNode } from '../../src/native/onnx-model.js';
import { buildStepGraph } from '../../src/native/step-graph/build.js';
import { recordHutchinsonStep } from '../../test/native/step-graph/helpers.js';
import { arg } from './args.js';
import { openSession, Tensor } from './ort-session.js';

tf.env().set('IS_TEST', false);
const runs = Number(arg('runs', '40'));
const flush = process.argv.includes('--flush');
const junk = new Float32Array(flush ? 32 << 20 : 1);
const [B, T, D] = [Number(arg('batch', '64')), Number(arg('context', '64')), 64];
const EPS = 1e-3; // tf.layers.layerNormalization's default epsilon

await useBackend('cpu');

// --compact: the char transformer's layer norm since the tenth session, its gradients as nodes.
const ln = process.argv.includes('--compact')
  ? new CompactLayerNormalization({ axis: -1, epsilon: EPS })
  : tf.layers.layerNormalization({ axis: -1, epsilon: EPS });
ln.build([B, T, D]);
const x = tf.tidy(() => tf.variable(tf.randomNormal([B, T, D], 0, 1, 'float32', 1)));
const c = tf.randomUniform([B, T, D], 0.5, 1.5, 'float32', 2);
tf.tidy(() => {
  // Gamma and beta away from 1 and 0, so that every term is exercised.
  const [gamma, beta] = ln.trainableWeights.map((w) => w.read() as tf.Variable);
  gamma!.assign(tf.randomUniform([D], 0.5, 1.5, 'float32', 3));
  beta!.assign(tf.randomNormal([D], 0, 0.1, 'float32', 4));
});
const vars = [x, ...ln.trainableWeights.map((w) => w.read() as tf.Variable)];
// As step-graph.ts records it: variables and probes are graph inputs.
const { result, recording, outputs, probes } = recordHutchinsonStep(
  () =>
    tf.tidy(() => {
      const y = ln.apply(x) as tf.Tensor;
      return tf.mul(0.5, tf.sum(tf.mul(c, tf.mul(y, y)))) as tf.Scalar;
    }),
  vars,
);
const built = buildStepGraph(recording, outputs);

// The hand-written graph. Inputs: x and c as [B*T, D], gamma, beta, the probes zx [B*T, D],
// zg, zb. Outputs: loss, dx, dgamma, dbeta, then z * Hz for x, gamma, beta.
const n = (op: string, inputs: string[], out: string, attributes?: OnnxNode['attributes']) =>
  ({ opType: op, inputs, outputs: [out], ...(attributes ? { attributes } : {}) }) as OnnxNode;
const rows = { axes: { kind: 'ints' as const, value: [1] } };
const all = { keepdims: { kind: 'int' as const, value: 0 } };
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
const forwardAndGradient: OnnxNode[] = [
  // forward and loss
  n('ReduceMean', ['x'], 'mean', rows),
  n('Sub', ['x', 'mean'], 'xc'),
  n('Mul', ['xc', 'xc'], 'xc2'),
  n('ReduceMean', ['xc2'], 'var', rows),
  n('Add', ['var', 'eps'], 'varEps'),
  n('Sqrt', ['varEps'], 'std'),
  n('Reciprocal', ['std'], 'r'),
  n('Mul', ['xc', 'r'], 'xh'),
  n('Mul', ['xh', 'gamma'], 'xhg'),
  n('Add', ['xhg', 'beta'], 'y'),
  n('Mul', ['c', 'y'], 'dy'),
  n('Mul', ['dy', 'y'], 'cyy'),
  n('ReduceSum', ['cyy'], 'sum', all),
  n('Mul', ['sum', 'half'], 'loss'),
  // gradient
  n('ReduceSum', ['dy', 'axis0'], 'dbeta', all),
  n('Mul', ['dy', 'xh'], 'dyxh'),
  n('ReduceSum', ['dyxh', 'axis0'], 'dgamma', all),
  n('Mul', ['dy', 'gamma'], 'g'),
  n('ReduceMean', ['g'], 'm1', rows),
  n('Mul', ['g', 'xh'], 'gxh'),
  n('ReduceMean', ['gxh'], 'm2', rows),
  n('Mul', ['xh', 'm2'], 'xhm2'),
  n('Sub', ['g', 'm1'], 'g1'),
  n('Sub', ['g1', 'xhm2'], 'g2'),
  n('Mul', ['g2', 'r'], 'dx'),
];
// Forward over reverse: the gradient's derivative along the probe.
const tangent: OnnxNode[] = [
  n('ReduceMean', ['zx'], 'mz', rows),
  n('Mul', ['xh', 'zx'], 'xhz'),
  n('ReduceMean', ['xhz'], 'mxhz', rows),
  n('Mul', ['r', 'mxhz'], 'rmxhz'),
  n('Neg', ['rmxhz'], 's'),
  n('Sub', ['zx', 'mz'], 'z1'),
  n('Mul', ['xh', 'mxhz'], 'xhmxhz'),
  n('Sub', ['z1', 'xhmxhz'], 'z2'),
  n('Mul', ['z2', 'r'], 'Rxh'),
  n('Mul', ['Rxh', 'gamma'], 'Rxhg'),
  n('Mul', ['xh', 'zg'], 'xhzg'),
  n('Add', ['Rxhg', 'xhzg'], 'Ry1'),
  n('Add', ['Ry1', 'zb'], 'Ry'),
  n('Mul', ['c', 'Ry'], 'Rdy'),
  n('Mul', ['Rdy', 'gamma'], 'Rg1'),
  n('Mul', ['dy', 'zg'], 'dyzg'),
  n('Add', ['Rg1', 'dyzg'], 'Rg'),
  n('ReduceSum', ['Rdy', 'axis0'], 'Hzb', all),
  n('Mul', ['Rdy', 'xh'], 'Rdyxh'),
  n('Mul', ['dy', 'Rxh'], 'dyRxh'),
  n('Add', ['Rdyxh', 'dyRxh'], 'Rdg'),
  n('ReduceSum', ['Rdg', 'axis0'], 'Hzg', all),
  n('ReduceMean', ['Rg'], 'mRg', rows),
  n('Mul', ['Rg', 'xh'], 'Rgxh'),
  n('Mul', ['g', 'Rxh'], 'gRxh'),
  n('Add', ['Rgxh', 'gRxh'], 'Rm2in'),
  n('ReduceMean', ['Rm2in'], 'Rm2', rows),
  n('Sub', ['Rg', 'mRg'], 'h1'),
  n('Mul', ['Rxh', 'm2'], 'Rxhm2'),
  n('Sub', ['h1', 'Rxhm2'], 'h2'),
  n('Mul', ['xh', 'Rm2'], 'xhRm2'),
  n('Sub', ['h2', 'xhRm2'], 'h3'),
  n('Mul', ['h3', 'r'], 'h4'),
  n('Mul', ['dx', 's'], 'sdx'),
  n('Add', ['sdx', 'h4'], 'Hzx'),
  n('Mul', ['zx', 'Hzx'], 'diagx'),
  n('Mul', ['zg', 'Hzg'], 'diagg'),
  n('Mul', ['zb', 'Hzb'], 'diagb'),
];
// Reverse over reverse, as a sweep-level rewrite would run (see the header): the gradient's
// outputs dx, dgamma, dbeta get the probe as their adjoints u, u_gamma, u_beta.
const reverse: OnnxNode[] = [
  n('Mul', ['zx', 'r'], 'w'),
  n('ReduceMean', ['w'], 'mw', rows),
  n('Mul', ['w', 'xh'], 'wxh'),
  n('ReduceMean', ['wxh'], 'mwxh', rows),
  n('Sub', ['w', 'mw'], 'gb1'),
  n('Mul', ['xh', 'mwxh'], 'gb2'),
  n('Sub', ['gb1', 'gb2'], 'gbar'),
  n('Mul', ['w', 'm2'], 'a1'),
  n('Mul', ['g', 'mwxh'], 'a2'),
  n('Add', ['a1', 'a2'], 'a3'),
  n('Mul', ['dy', 'zg'], 'a4'),
  n('Sub', ['a4', 'a3'], 'xhbar0'),
  n('Mul', ['zx', 'g2'], 'ug2'),
  n('ReduceSum', ['ug2', 'axis1'], 'rbar'),
  n('Mul', ['gbar', 'gamma'], 'b1'),
  n('Mul', ['xh', 'zg'], 'b2'),
  n('Add', ['b1', 'b2'], 'b3'),
  n('Add', ['b3', 'zb'], 'dybar'),
  n('Mul', ['gbar', 'dy'], 'gdy'),
  n('ReduceSum', ['gdy', 'axis0'], 'gammabar1', all),
  n('Mul', ['c', 'dybar'], 'ybar'),
  n('Mul', ['ybar', 'xh'], 'yxh'),
  n('ReduceSum', ['yxh', 'axis0'], 'gammabar2', all),
  n('Add', ['gammabar1', 'gammabar2'], 'Hzg'),
  n('ReduceSum', ['ybar', 'axis0'], 'Hzb', all),
  n('Mul', ['ybar', 'gamma'], 'yg'),
  n('Add', ['xhbar0', 'yg'], 'xhbar'),
  n('ReduceMean', ['xhbar'], 'mxb', rows),
  n('Mul', ['xhbar', 'xh'], 'xbxh'),
  n('ReduceMean', ['xbxh'], 'mxbxh', rows),
  n('Sub', ['xhbar', 'mxb'], 'e1'),
  n('Mul', ['xh', 'mxbxh'], 'e2'),
  n('Sub', ['e1', 'e2'], 'e3'),
  n('Mul', ['e3', 'r'], 'e4'),
  n('Mul', ['r', 'r'], 'rr'),
  n('Mul', ['rbar', 'rr'], 'k1'),
  n('Div', ['k1', 'width'], 'k2'),
  n('Mul', ['xh', 'k2'], 'f'),
  n('Sub', ['e4', 'f'], 'Hzx'),
  n('Mul', ['zx', 'Hzx'], 'diagx'),
  n('Mul', ['zg', 'Hzg'], 'diagg'),
  n('Mul', ['zb', 'Hzb'], 'diagb'),
];
const handGraph = (nodes: OnnxNode[]): OnnxGraph => ({
  nodes: [...forwardAndGradient, ...nodes],
  inputs: [
    { name: 'x', shape: [B * T, D] },
    { name: 'gamma', shape: [D] },
    { name: 'beta', shape: [D] },
    { name: 'c', shape: [B * T, D] },
    { name: 'zx', shape: [B * T, D] },
    { name: 'zg', shape: [D] },
    { name: 'zb', shape: [D] },
  ],
  outputs: ['loss', 'dx', 'dgamma', 'dbeta', 'diagx', 'diagg', 'diagb'].map((name) => ({
    name,
    shape: name === 'loss' ? [] : name.endsWith('x') ? [B * T, D] : [D],
  })),
  tensorInitializers: [
    f32('eps', EPS),
    f32('half', 0.5),
    f32('width', D),
    i64('axis0', [0]),
    i64('axis1', [1]),
  ],
});
const byHand = handGraph(tangent);
const byHandReverse = handGraph(reverse);

const backend = tf.backend() as unknown as { readSync(id: object): unknown };
const asTensor = (t: tf.Tensor, shape = t.shape) => new Tensor('float32', t.dataSync(), [...shape]);

const recorded = openSession(built.graph);
const recordedFeeds: Record<string, object> = {};
for (const e of built.inputExternals) {
  const ext = recording.externals[e]!;
  recordedFeeds[`e${e}`] = new Tensor(ext.dtype, backend.readSync(ext.dataId!), ext.shape);
}
const hand = openSession(byHand);
const handReverse = openSession(byHandReverse);
const [zx, zg, zb] = probes[0]!;
const handFeeds = {
  x: asTensor(x, [B * T, D]),
  gamma: asTensor(vars[1]!),
  beta: asTensor(vars[2]!),
  c: asTensor(c, [B * T, D]),
  zx: asTensor(zx!, [B * T, D]),
  zg: asTensor(zg!),
  zb: asTensor(zb!),
};
const sizes = outputs.map((o) => o.shape.reduce((a, b) => a * b, 1));
const got = [0, 1, 2].map(() => sizes.map((s) => new Float32Array(s)));
const cases = [
  { s: recorded, feeds: recordedFeeds, names: built.graph.outputs.map((o) => o.name) },
  { s: hand, feeds: handFeeds, names: byHand.outputs.map((o) => o.name) },
  { s: handReverse, feeds: handFeeds, names: byHand.outputs.map((o) => o.name) },
];
const times: number[][] = [[], [], []];
// Process CPU time too: less noisy than wall time on a loaded machine.
const cpu: number[][] = [[], [], []];
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
const names = ['loss', 'dx', 'dgamma', 'dbeta', 'z*Hz x', 'z*Hz gamma', 'z*Hz beta'];
const differences = (k: number) =>
  got[0]!.map((a, i) => {
    const scale = a.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-30);
    let largest = 0;
    a.forEach((v, j) => (largest = Math.max(largest, Math.abs(v - got[k]![i]![j]!) / scale)));
    return `${names[i]} ${largest.toExponential(1)}`;
  });
const line = (label: string, k: number, nodes: number) =>
  `  ${label.padEnd(30)} ${String(nodes).padStart(3)} nodes, median ${median(times[k]!).toFixed(3)} ms, min ${Math.min(...times[k]!).toFixed(3)}, process CPU median ${median(cpu[k]!).toFixed(3)} ms` +
  (k === 0
    ? ''
    : ` (${(median(cpu[k]!) / median(cpu[0]!)).toFixed(3)} of recorded)\n    largest differences from recorded, relative to each output's largest value: ${differences(k).join(', ')}`);
console.log(
  `layer norm [${B}, ${T}, ${D}], loss 0.5 sum(c y^2): loss, gradients and Hutchinson diagonal, 1 thread, ${runs} runs${flush ? ', cache flushed' : ''}:\n` +
    `${line('as recorded and built:', 0, built.nodeCount)}\n` +
    `${line('by hand, forward over reverse:', 1, byHand.nodes.length)}\n` +
    `${line('by hand, reverse over reverse:', 2, byHandReverse.nodes.length)}`,
);
tf.dispose([...result, x, c, ...probes.flat()]);
ln.weights.forEach((w) => w.dispose());
