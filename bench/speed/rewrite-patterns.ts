/**
 * The step-graph rewrites of build.ts (filter-grad-pairs.ts, nchwc-duplicates.ts, conv-pairs.ts,
 * conv-bias.ts, pool-relu-masks.ts) on convolution models they were not written for: 1x1 convs,
 * strides, 'valid' padding, dilation, no bias, depthwise, a conv read twice, convs in a row,
 * batch 1, odd sizes, non-tiling max pools. Not a timing: a correctness sweep.
 *
 *   npx tsx bench/speed/rewrite-patterns.ts [--cases a,b] [--threads 1,2] [--steps 3]
 *
 * Per case and thread count, two things:
 *   1. The built AdaHessian graph (recorded once, as test/native/step-graph/helpers.ts does),
 *      with every pass on, and with each pass alone off: the node count each pass took away
 *      (which passes fired), and the graph with all of them off run beside the default one:
 *      how far the passes move the outputs (L2 error over the check's L2 tolerance, as
 *      disagreement() in step-graph.ts; 0 = the same bits).
 *   2. CompiledSteps (what the optimizers use), AdaHessian and first-order, `--steps` steps
 *      each: whether the graph was used (step 1 checked, 2 confirmed, later replayed) or
 *      refused (the compiler's reasons), and every step's outputs against op by op on TF.js's
 *      stock cpu kernels (the same ratio; the check refuses above 1).
 */
import * as tf from '@tensorflow/tfjs';
import { buildSmallCnn, softmaxCrossEntropy, useBackend } from '../../src/index.js';
import { buildStepGraph } from '../../src/native/step-graph/build.js';
import { CompiledSteps } from '../../src/native/step-graph/hutchinson-step.js';
import { drawProbes, hutchinsonDiagonal } from '../../src/optimizers/hutchinson.js';
import { RademacherGenerator } from '../../src/optimizers/rademacher.js';
import { recordHutchinsonStep, runBuiltGraph } from '../../test/native/step-graph/helpers.js';
import { arg } from './args.js';

tf.env().set('IS_TEST', false);
await useBackend('cpu');

/** The passes this session added or extended, by the variable that turns each off. */
const PASSES: [string, string, string][] = [
  ['fgradpairs', 'ADAHESSIAN_FILTER_GRAD_PAIRS', '0'],
  ['nchwcdup', 'ADAHESSIAN_NCHWC_DUPLICATES', '0'],
  ['convpairs', 'ADAHESSIAN_CONV_PAIRS', '0'],
  ['convbias', 'ADAHESSIAN_CONV_BIAS', '0'],
  ['poolmasks', 'ADAHESSIAN_POOL_MASKS', '0'],
];

const seeded = (seed: number) => tf.initializers.heNormal({ seed });
type Layers = typeof tf.layers;
interface Case {
  input: [number, number, number];
  batch?: number;
  /** The model's body from its input; a Dense(5) on the flattened output is added. */
  body(l: Layers, x: tf.SymbolicTensor): tf.SymbolicTensor;
}
const conv = (
  l: Layers,
  filters: number,
  k: number | [number, number],
  more: object = {},
  seed = 1,
) =>
  l.conv2d({
    filters,
    kernelSize: k,
    padding: 'same',
    activation: 'relu',
    kernelInitializer: seeded(seed),
    biasInitializer: tf.initializers.randomNormal({ stddev: 0.1, seed: seed + 50 }),
    ...more,
  });
const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) =>
  layer.apply(x) as tf.SymbolicTensor;

const CASES: Record<string, Case> = {
  // 1x1 convolutions only (pointwise), a tiling pool after.
  pointwise: {
    input: [10, 10, 3],
    body: (l, x) => {
      const a = apply(conv(l, 8, 1, {}, 1), x);
      const b = apply(conv(l, 16, 1, {}, 2), a);
      return apply(l.maxPooling2d({ poolSize: 2 }), b);
    },
  },
  // Stride 2 with 'valid' padding on an odd, non-square image, then a same conv, no pool.
  'stride2-valid': {
    input: [13, 11, 2],
    body: (l, x) => {
      const a = apply(conv(l, 8, 3, { strides: 2, padding: 'valid' }, 3), x);
      return apply(conv(l, 16, 3, {}, 4), a);
    },
  },
  // Dilation 2 ('same'), a pool between.
  dilation: {
    input: [12, 12, 1],
    body: (l, x) => {
      const a = apply(conv(l, 8, 3, { dilationRate: 2 }, 5), x);
      const p = apply(l.maxPooling2d({ poolSize: 2 }), a);
      return apply(conv(l, 16, 3, { dilationRate: 2 }, 6), p);
    },
  },
  // Three convs in a row without bias and without pooling.
  'no-bias-in-a-row': {
    input: [9, 9, 4],
    body: (l, x) => {
      const a = apply(conv(l, 8, 3, { useBias: false }, 7), x);
      const b = apply(conv(l, 16, 3, { useBias: false }, 8), a);
      return apply(conv(l, 16, 3, { useBias: false }, 9), b);
    },
  },
  // Convs in a row with biases, channel counts off the NCHWc block (5, 12).
  'odd-channels-in-a-row': {
    input: [11, 9, 3],
    body: (l, x) => {
      const a = apply(conv(l, 5, 3, {}, 10), x);
      const b = apply(conv(l, 12, 3, {}, 11), a);
      return apply(conv(l, 16, 3, {}, 12), b);
    },
  },
  // Depthwise (relu) then pointwise, as a separable block; then a separable conv.
  depthwise: {
    input: [10, 10, 8],
    body: (l, x) => {
      const d = apply(
        l.depthwiseConv2d({
          kernelSize: 3,
          padding: 'same',
          activation: 'relu',
          depthwiseInitializer: seeded(13),
        }),
        x,
      );
      const p = apply(conv(l, 16, 1, {}, 14), d);
      const q = apply(l.maxPooling2d({ poolSize: 2 }), p);
      return apply(
        l.separableConv2d({
          filters: 16,
          kernelSize: 3,
          padding: 'same',
          activation: 'relu',
          depthwiseInitializer: seeded(15),
          pointwiseInitializer: seeded(16),
        }),
        q,
      );
    },
  },
  // A conv output read by two convs and by a residual add; pools after.
  'two-consumers': {
    input: [12, 12, 2],
    body: (l, x) => {
      const h = apply(conv(l, 16, 3, {}, 17), x);
      const b = apply(conv(l, 16, 3, { activation: 'linear' }, 18), h);
      const c = apply(conv(l, 16, 1, { activation: 'linear' }, 19), h);
      const s = apply(l.add(), [b, c, h]);
      const r = apply(l.reLU(), s);
      return apply(l.maxPooling2d({ poolSize: 2 }), r);
    },
  },
  // Max pools whose windows do not tile: 3x3 stride 2 'same', then 2x2 'same' on an odd size.
  'pool-3x3-s2-same': {
    input: [13, 13, 3],
    body: (l, x) => {
      const a = apply(conv(l, 16, 3, {}, 20), x);
      const p = apply(l.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }), a);
      const b = apply(conv(l, 16, 3, {}, 21), p);
      return apply(l.maxPooling2d({ poolSize: 2, padding: 'same' }), b);
    },
  },
  // 2x2 'valid' pools on odd sizes (tiling, not covering the last row and column), a linear
  // conv pooled then relu'd (no relu mask next to the pool), and a tanh conv pooled.
  'pool-odd-valid': {
    input: [13, 13, 1],
    body: (l, x) => {
      const a = apply(conv(l, 16, 3, { activation: 'linear' }, 22), x);
      const p = apply(l.maxPooling2d({ poolSize: 2 }), a);
      const r = apply(l.reLU(), p);
      const b = apply(conv(l, 16, 3, { activation: 'tanh' }, 23), r);
      return apply(l.maxPooling2d({ poolSize: 2 }), b);
    },
  },
  // Average pooling after relu convs.
  avgpool: {
    input: [12, 12, 2],
    body: (l, x) => {
      const a = apply(conv(l, 16, 3, {}, 24), x);
      const p = apply(l.averagePooling2d({ poolSize: 2 }), a);
      return apply(conv(l, 16, 3, {}, 25), p);
    },
  },
  // 'valid' convs in a row (stride 1), a 5x5 and a non-square 1x3 among them.
  'valid-in-a-row': {
    input: [14, 12, 2],
    body: (l, x) => {
      const a = apply(conv(l, 16, 3, { padding: 'valid' }, 26), x);
      const b = apply(conv(l, 16, 5, { padding: 'valid' }, 27), a);
      return apply(conv(l, 16, [1, 3], { padding: 'valid' }, 28), b);
    },
  },
  // Even kernels with 'same' padding (pads differ before and after), stride 1 and 2.
  'even-kernels': {
    input: [12, 10, 2],
    body: (l, x) => {
      const a = apply(conv(l, 16, 2, {}, 29), x);
      const b = apply(conv(l, 16, 4, {}, 30), a);
      return apply(conv(l, 16, 2, { strides: 2 }, 31), b);
    },
  },
  // One conv layer applied twice (its filter's gradient and sweep sum two uses).
  'shared-weights': {
    input: [10, 10, 16],
    body: (l, x) => {
      const shared = conv(l, 16, 3, {}, 32);
      return apply(shared, apply(shared, x));
    },
  },
  // The small CNN itself at batch 1 on an odd image (15x13).
  'small-cnn-batch1-odd': { input: [15, 13, 1], batch: 1, body: () => null! },
};

function buildCase(name: string, c: Case): tf.LayersModel {
  if (name.startsWith('small-cnn'))
    return buildSmallCnn({ inputShape: c.input, classes: 5, seed: 2 });
  const l = tf.layers;
  const x = tf.input({ shape: c.input });
  const h = apply(l.flatten(), c.body(l, x));
  const out = apply(l.dense({ units: 5, kernelInitializer: seeded(99) }), h);
  return tf.model({ inputs: x, outputs: out });
}

/** disagreement()'s L2 ratio: L2 error / (2e-2 L2 norm + 1e-4 of the largest |b| overall). */
function l2Ratio(got: tf.Tensor[], want: tf.Tensor[]): number {
  const ws = want.map((t) => t.dataSync());
  let overall = 0;
  for (const w of ws)
    for (let i = 0; i < w.length; i++) overall = Math.max(overall, Math.abs(w[i]!));
  let worst = 0;
  got.forEach((g, k) => {
    const a = g.dataSync();
    const b = ws[k]!;
    let e = 0;
    let n = 0;
    for (let i = 0; i < b.length; i++) {
      e += (a[i]! - b[i]!) ** 2;
      n += b[i]! ** 2;
    }
    const r = Math.sqrt(e) / (2e-2 * Math.sqrt(n) + 1e-4 * overall * Math.sqrt(b.length));
    worst = Math.max(worst, Number.isNaN(r) ? Infinity : r);
  });
  return worst;
}
const arrays = (ts: Float32Array[][], shapes: number[][]) =>
  ts[0]!.map((a, k) => tf.tensor(a, shapes[k]!));

const names = arg('cases', Object.keys(CASES).join(',')).split(',');
const threadCounts = arg('threads', '1,2').split(',').map(Number);
const steps = Number(arg('steps', '3'));
const fmt = (r: number) => (r === 0 ? '0' : r.toExponential(1));
let failures = 0;
for (const name of names) {
  const c = CASES[name];
  if (c == null) throw new Error(`no case '${name}'; cases: ${Object.keys(CASES).join(', ')}`);
  const batch = c.batch ?? 4;
  const model = buildCase(name, c);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const data = (s: number) =>
    tf.tidy(() => ({
      x: tf.randomUniform([batch, ...c.input], 0, 1, 'float32', 100 + s),
      y: tf.oneHot(tf.randomUniform([batch], 0, 5, 'int32', 200 + s), 5),
    }));
  for (const threads of threadCounts) {
    // 1. The built graph, each pass alone off, and all off beside all on.
    const { x, y } = data(0);
    const loss = () => softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) as tf.Scalar;
    const rec = recordHutchinsonStep(loss, vars, 7);
    const build = () => buildStepGraph(rec.recording, rec.outputs, { threads });
    const withEnv = <T>(env: [string, string][], f: () => T): T => {
      const saved = env.map(([k]) => [k, process.env[k]] as const);
      for (const [k, v] of env) process.env[k] = v;
      try {
        return f();
      } finally {
        for (const [k, v] of saved)
          if (v === undefined) delete process.env[k];
          else process.env[k] = v;
      }
    };
    let all: ReturnType<typeof build> | undefined;
    try {
      all = build();
    } catch (e) {
      // A kernel without a translation: op by op, whatever the passes do (part 2 says so too).
      tf.dispose([...rec.result, ...rec.probes.flat(), x, y]);
      console.log(`${name} (batch ${batch}), ${threads}t: not built: ${(e as Error).message}`);
    }
    if (all != null) {
      const fired = PASSES.map(([short, env, off]) => {
        const without = withEnv([[env, off]], build);
        return `${short} ${without.nodeCount - all.nodeCount}`;
      });
      const none = withEnv(
        PASSES.map(([, env, off]) => [env, off]),
        build,
      );
      const shapes = rec.outputs.map((o) => o.shape);
      const onValues = arrays(runBuiltGraph(all, rec.recording, { threads }), shapes);
      const offValues = arrays(runBuiltGraph(none, rec.recording, { threads }), shapes);
      const passesMove = l2Ratio(onValues, offValues);
      const bitsSame = onValues.every((t, k) => {
        const a = t.dataSync();
        const b = offValues[k]!.dataSync();
        return a.every((v, i) => Object.is(v, b[i]));
      });
      const graphVsOps = l2Ratio(onValues, rec.result);
      tf.dispose([...onValues, ...offValues, ...rec.result, ...rec.probes.flat(), x, y]);
      console.log(
        `${name} (batch ${batch}), ${threads}t: ${all.nodeCount} nodes, each pass off: +` +
          `${fired.join(', ')}; all passes off vs on: ${bitsSame ? 'same bits' : fmt(passesMove)}; ` +
          `built graph vs op by op ${fmt(graphVsOps)}`,
      );
    }

    // 2. What the optimizers use: used or refused, and each step against op by op.
    const reasons: string[] = [];
    const compiled = new CompiledSteps(vars, { threads, debug: (r) => reasons.push(r) });
    const generator = new RademacherGenerator(3);
    for (const kind of ['adahessian', 'first-order'] as const) {
      const replayed: boolean[] = [];
      let worst = 0;
      for (let s = 1; s <= steps; s++) {
        const { x, y } = data(s);
        const f = () => softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) as tf.Scalar;
        let got: tf.Tensor[];
        let want: tf.Tensor[];
        if (kind === 'adahessian') {
          const probes = drawProbes(generator, vars, 1);
          const r = compiled.hutchinsonStep(f, probes);
          replayed.push(r.replayed);
          got = [r.loss, ...r.grads, ...r.diagonal];
          const est = hutchinsonDiagonal(f, vars, { probes, checkFinite: false });
          want = [est.loss, ...est.grads, ...est.diagonal];
          tf.dispose(probes.flat());
        } else {
          const r = compiled.gradientStep(f);
          replayed.push(r.replayed);
          got = [r.loss, ...r.grads.map((g) => g!)];
          const { value, grads } = tf.variableGrads(f, vars);
          want = [value, ...vars.map((v) => grads[v.name]!)];
        }
        worst = Math.max(worst, l2Ratio(got, want));
        tf.dispose([...got, ...want, x, y]);
      }
      const compiler = kind === 'adahessian' ? compiled.hutchinson : compiled.gradient;
      const m = compiler.status.lastCheck;
      const used = replayed.slice(2).every(Boolean) && replayed.length > 2;
      if (!used || worst > 1) failures++;
      console.log(
        `  ${kind}: ${used ? 'used' : 'REFUSED'} (replayed ${replayed.map(Number).join('')}, ` +
          `${compiler.status.lastGraphNodes} nodes), check l2 ${m ? fmt(m.l2) : '-'} element ` +
          `${m ? fmt(m.element) : '-'}; steps vs stock op by op, worst ${fmt(worst)}` +
          (used ? '' : `; ${reasons.join(' | ')}`),
      );
    }
    compiled.dispose();
  }
  model.dispose();
}
console.log(
  failures === 0 ? 'all used, all within the check' : `${failures} refused or off the check`,
);
