/**
 * The char transformer with compact-gradient layer norms and GELUs (the default since the tenth
 * session, src/models/compact-gradient-layers.ts) against the same model with tf.layers' stock
 * ones (`compactGradients: false`), in one process, alternating step by step: the AdaHessian
 * step (loss, gradients, Hutchinson diagonal) and the first-order step (loss, gradients: Adam's)
 * as training replays them through CompiledSteps' step graphs, and the AdaHessian step op by op
 * (native kernels, no step graph). Prints per kind the median process CPU time and wall time of
 * a step, and compact / stock.
 *
 *   npx tsx bench/speed/compact-layers.ts                          # context 64, batch 64
 *   npx tsx bench/speed/compact-layers.ts --context 32 --batch 16  # lr-text's shapes
 *   npx tsx bench/speed/compact-layers.ts --rounds 10 --kinds adahessian,first-order,op-by-op
 *   npx tsx bench/speed/compact-layers.ts --compact-first   # build (and capture) compact first
 *
 * The variant built second ran 2-10 % slower in A/A runs (the same model twice: 1.02; the two
 * models in either order: 1.08-1.17 and 1/1.10 on the first-order step, whose two graphs give
 * the same bits), so run both orders and take the geometric mean of the two ratios.
 */
import * as tf from '@tensorflow/tfjs';
import { buildCharTransformer, softmaxCrossEntropy, useBackend } from '../../src/index.js';
import { enableNativeKernels } from '../../src/native/index.js';
import { CompiledSteps } from '../../src/native/step-graph/hutchinson-step.js';
import { drawProbes, hutchinsonDiagonal } from '../../src/optimizers/hutchinson.js';
import { RademacherGenerator } from '../../src/optimizers/rademacher.js';
import { arg } from './args.js';

tf.env().set('IS_TEST', false);
const context = Number(arg('context', '64'));
const batch = Number(arg('batch', '64'));
const rounds = Number(arg('rounds', '8'));
const threads = Number(arg('threads', '1'));
const kinds = arg('kinds', 'adahessian,first-order,op-by-op').split(',');
for (const k of kinds) {
  if (!['adahessian', 'first-order', 'op-by-op'].includes(k)) {
    throw new Error(`--kinds: '${k}'; expected adahessian, first-order or op-by-op`);
  }
}
const vocab = 96;

await useBackend('cpu');
const native = enableNativeKernels({ threads, stepGraphs: false });
if (!native.enabled) throw new Error(`native kernels unavailable: ${native.reason}`);
const ids = tf.randomUniform([batch, context], 0, vocab, 'int32', 1);
const y = tf.tidy(() => tf.oneHot(tf.randomUniform([batch, context], 0, vocab, 'int32', 2), vocab));

interface Variant {
  name: string;
  step: Record<string, () => void>;
  nodes: Record<string, number | undefined>;
  /** ONNX Runtime's time in the step graph so far (ms), and its arena reopenings. */
  graphMs: Record<string, () => number>;
  arenaReopened: () => number;
}

function variant(compactGradients: boolean): Variant {
  const model = buildCharTransformer({
    vocabSize: vocab,
    contextLength: context,
    seed: 1,
    compactGradients,
  });
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const probes = drawProbes(new RademacherGenerator(1), vars, 1);
  const loss = () =>
    softmaxCrossEntropy(y, model.apply(ids, { training: true }) as tf.Tensor) as tf.Scalar;
  const steps = new CompiledSteps(vars, { threads });
  const v: Variant = {
    name: compactGradients ? 'compact' : 'stock',
    nodes: {},
    graphMs: {
      adahessian: () => steps.hutchinson.status.graphMs,
      'first-order': () => steps.gradient.status.graphMs,
      'op-by-op': () => 0,
    },
    arenaReopened: () =>
      steps.hutchinson.status.arenaReopened + steps.gradient.status.arenaReopened,
    step: {
      adahessian: () => {
        const s = steps.hutchinsonStep(loss, probes);
        tf.dispose([s.loss, ...s.grads, ...s.diagonal]);
        v.nodes['adahessian'] = steps.hutchinson.status.lastGraphNodes;
      },
      'first-order': () => {
        const s = steps.gradientStep(loss);
        tf.dispose([s.loss, ...s.grads.filter((g): g is tf.Tensor => g != null)]);
        v.nodes['first-order'] = steps.gradient.status.lastGraphNodes;
      },
      'op-by-op': () => {
        const est = hutchinsonDiagonal(loss, vars, { probes, checkFinite: false });
        tf.dispose([est.loss, ...est.grads, ...est.diagonal]);
      },
    },
  };
  return v;
}

// Built in this order; the printed ratio is compact / stock either way.
const compactFirst = process.argv.includes('--compact-first');
const variants = compactFirst
  ? (() => {
      const c = variant(true);
      return [variant(false), c];
    })()
  : [variant(false), variant(true)];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(
  `char transformer, context ${context}, batch ${batch}, vocab ${vocab}, ${threads} thread(s), ` +
    `${rounds} rounds (medians; stock and compact alternate; ${compactFirst ? 'compact' : 'stock'} built first)`,
);
for (const kind of kinds) {
  const cpu: number[][] = [[], []];
  const wall: number[][] = [[], []];
  const graph: number[][] = [[], []];
  // Capture, confirmation and a first replay, untimed.
  for (let k = 0; k < 3; k++) for (const v of variants) v.step[kind]!();
  for (let r = 0; r < rounds; r++) {
    // Alternate which goes first, so that neither always follows the other.
    const order = r % 2 === 0 ? [0, 1] : [1, 0];
    for (const i of order) {
      const c0 = process.cpuUsage();
      const g0 = variants[i]!.graphMs[kind]!();
      const t0 = performance.now();
      variants[i]!.step[kind]!();
      wall[i]!.push(performance.now() - t0);
      graph[i]!.push(variants[i]!.graphMs[kind]!() - g0);
      const c = process.cpuUsage(c0);
      cpu[i]!.push((c.user + c.system) / 1000);
    }
  }
  const [cs, cc] = cpu.map(median) as [number, number];
  const [ws, wc] = wall.map(median) as [number, number];
  const [gs, gc] = graph.map(median) as [number, number];
  const nodes = variants.map((v) => v.nodes[kind]);
  console.log(
    `  ${kind.padEnd(12)} stock ${cs.toFixed(1)} ms CPU, ${ws.toFixed(1)} wall` +
      `${nodes[0] != null ? ` (${nodes[0]} nodes)` : ''}; compact ${cc.toFixed(1)} CPU, ` +
      `${wc.toFixed(1)} wall${nodes[1] != null ? ` (${nodes[1]} nodes)` : ''}; ` +
      `compact / stock: CPU ${(cc / cs).toFixed(3)}, wall ${(wc / ws).toFixed(3)}` +
      (gs > 0
        ? `; session.run ${gs.toFixed(1)} -> ${gc.toFixed(1)} ms, ${(gc / gs).toFixed(3)}`
        : ''),
  );
}
console.log(
  `  arena reopenings (arena.ts): stock ${variants[0]!.arenaReopened()}, compact ${variants[1]!.arenaReopened()}`,
);
