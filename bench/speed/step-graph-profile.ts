/**
 * Where ONNX Runtime spends a replayed char-transformer AdaHessian step, by TF.js kernel: the
 * step (loss, gradients, Hutchinson diagonal, as src/native/step-graph/hutchinson-step.ts
 * records it) is captured once, built into its step graph and run `--runs` times with ONNX
 * Runtime's per-node profile on; each node's time is credited to the recorded kernel call it
 * translates, and summed by phase (forward, gradient, Hessian-vector sweep) and kernel name.
 *
 *   npx tsx bench/speed/step-graph-profile.ts                 # defaults: d 64, context 64, batch 64
 *   npx tsx bench/speed/step-graph-profile.ts --runs 10 --top 40 --threads 2
 *   npx tsx bench/speed/step-graph-profile.ts --model small-cnn     # batch 128 of 28x28x1
 *   npx tsx bench/speed/step-graph-profile.ts --model resnet20      # batch 64 of 28x28x1, batch norm training
 *   npx tsx bench/speed/step-graph-profile.ts --first-order   # loss and gradients only (Adam's graph)
 *   npx tsx bench/speed/step-graph-profile.ts --first-order --ab lngrad=1 --runs 30  # A/B
 *   npx tsx bench/speed/step-graph-profile.ts --first-order --a lngrad=1 --ab gelugrad=1
 *   npx tsx bench/speed/step-graph-profile.ts --model small-cnn --a step=where --ab step=div  # A/B
 *
 * The phases: calls inside the loss function are the forward pass; after it, calls up to the
 * first one that reads a probe are the gradient; from there on, the sweep (and the diagonal).
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
import { encodeOnnxModel } from '../../src/native/onnx-model.js';
import { record } from '../../src/native/step-graph/capture.js';
import { buildStepGraph } from '../../src/native/step-graph/build.js';
import { TRANSLATIONS } from '../../src/native/step-graph/translate.js';
import type { SimplifyPass } from '../../src/native/step-graph/simplify.js';
import { hutchinsonDiagonal, drawProbes } from '../../src/optimizers/hutchinson.js';
import { RademacherGenerator } from '../../src/optimizers/rademacher.js';
import { asGraphInputs } from '../../test/native/step-graph/helpers.js';
import { arg } from './args.js';

tf.env().set('IS_TEST', false);

const d = Number(arg('d', '64'));
const context = Number(arg('context', '64'));
const vocab = Number(arg('vocab', '96'));
const modelName = arg('model', 'transformer');
if (modelName !== 'transformer' && modelName !== 'small-cnn' && modelName !== 'resnet20')
  throw new Error(`--model: '${modelName}'; expected transformer, small-cnn or resnet20`);
const resnet = modelName === 'resnet20';
/** An image model (28x28x1 inputs, 10 classes). */
const cnn = modelName === 'small-cnn' || resnet;
const batch = Number(arg('batch', modelName === 'small-cnn' ? '128' : '64'));
const runs = Number(arg('runs', '6'));
const top = Number(arg('top', '30'));
const threads = Number(arg('threads', '1'));
const optimization = arg('optimization', 'all');
// The first-order step (what TF.js's optimizers replay): loss and gradients, no sweep.
const firstOrder = process.argv.includes('--first-order');

await useBackend('cpu');
const native = enableNativeKernels({ threads, stepGraphs: false });
if (!native.enabled) throw new Error(`native kernels unavailable: ${native.reason}`);

const model = resnet
  ? buildResNet20({ inputShape: [28, 28, 1], seed: 1 })
  : cnn
    ? buildSmallCnn({ seed: 1 })
    : buildCharTransformer({ vocabSize: vocab, contextLength: context, dModel: d, seed: 1 });
const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
const ids = cnn
  ? tf.randomUniform([batch, 28, 28, 1], 0, 1, 'float32', 1)
  : tf.randomUniform([batch, context], 0, vocab, 'int32', 1);
const classes = cnn ? 10 : vocab;
const y = tf.tidy(() =>
  tf.oneHot(tf.randomUniform(cnn ? [batch] : [batch, context], 0, classes, 'int32', 2), classes),
);
const probes = drawProbes(new RademacherGenerator(1), vars, 1);

let forward = { start: 0, end: 0 };
const { result, recording, refOf } = record((count) => {
  if (firstOrder) {
    const { value, grads } = tf.variableGrads(() => {
      const start = count();
      const loss = softmaxCrossEntropy(
        y,
        model.apply(ids, { training: resnet }) as tf.Tensor,
      ) as tf.Scalar;
      forward = { start, end: count() };
      return loss;
    }, vars);
    return [value, ...vars.map((v) => grads[v.name]!)];
  }
  const est = hutchinsonDiagonal(
    () => {
      const start = count();
      const loss = softmaxCrossEntropy(y, model.apply(ids, { training: resnet }) as tf.Tensor);
      forward = { start, end: count() };
      return loss;
    },
    vars,
    { probes, checkFinite: false },
  );
  return [est.loss, ...est.grads, ...est.diagonal];
});
const outputs = result.map((t) => ({ ref: refOf(t)!, shape: [...t.shape] }));
asGraphInputs(recording, [...vars, ...probes.flat()]);
const probeRead = recording.calls.findIndex(
  (c, i) =>
    i >= forward.end &&
    c.inputs.some(
      (inp) =>
        inp.ref.kind === 'external' &&
        probes.flat().some((p) => p.dataId === recording.externals[inp.ref.index]!.dataId),
    ),
);
const firstProbeRead = probeRead < 0 ? recording.calls.length : probeRead;
const phaseOf = (call: number) =>
  call < forward.end ? 'forward' : call < firstProbeRead ? 'gradient' : 'sweep';

console.log(
  `${resnet ? 'ResNet-20' : cnn ? 'small CNN' : `char transformer d ${d}, context ${context}, vocab ${vocab}`}, batch ${batch}: ${recording.calls.length} calls ` +
    `(forward ${forward.end - forward.start}, gradient ${firstProbeRead - forward.end}, sweep ${recording.calls.length - firstProbeRead})`,
);

const runtime = loadOnnxRuntime()!;
const dir = mkdtempSync(join(tmpdir(), 'step-graph-profile-'));
type Session = {
  loadModel(b: ArrayBuffer, o: number, l: number, options: object): void;
  run(feeds: object, fetches: object, options: object): void;
  endProfiling(): string;
};
const Tensor = runtime.Tensor as unknown as new (t: string, d: unknown, s: number[]) => object;
const backend = tf.backend() as unknown as { readSync(id: object): unknown };

/** A variant: ONNX Runtime's session options and the build's rewrites, as `key=value` pairs. */
interface Variant {
  threads: number;
  interOp: number;
  optimization: string;
  memPattern: boolean;
  arena: boolean;
  skip: SimplifyPass[];
  /** ONNX Runtime's session.set_denormal_as_zero (flush denormals to zero). */
  ftz: boolean;
  /**
   * Environment switches read while the graph is built (translate-conv.ts): nchwc=0 plain
   * Convs (ADAHESSIAN_NCHWC).
   */
  env: Record<string, string>;
  /** lngrad=1: the layer norms' gradients by hand (build.ts layerNormGradients, first order). */
  layerNormGradients: boolean;
  /** gelugrad=1: GELU's gradients by hand (build.ts geluGradients, first order). */
  geluGradients: boolean;
  /** barematmul=1: products without their no-op Reshapes (build.ts elideMatMulReshapes). */
  elideMatMulReshapes: boolean;
  /** step=where: relu's mask as translate.ts wrote it before (Greater, Where, IsNaN, Where). */
  stepWhere: boolean;
  /** disable=A+B: ONNX Runtime graph optimisers left out (optimization.disable_specified_optimizers, a ';' list: with ',' ONNX Runtime reads one unknown name and leaves out nothing). */
  disable: string[];
  /** spin=1: ONNX Runtime's intra-op threads spin between parallel sections (off by default). */
  spin: boolean;
  /** dynblock=n: ONNX Runtime's session.dynamic_block_base (parallel loops' shrinking blocks). */
  dynamicBlockBase: number;
  /** affinity=2: session.intra_op_thread_affinities (the worker threads' logical processors, 1-based, ';'-separated as '2+3'). */
  affinity: string;
}

/** translate.ts's Step before the eighth session's second task: the A/B's baseline. */
const STEP_WITH_WHERE: (typeof TRANSLATIONS)[string] = (ctx) => {
  const x = ctx.input('x');
  const [gt, stepped, nan] = [ctx.temp(), ctx.temp(), ctx.temp()];
  ctx.node('Greater', [x, ctx.scalar(0, 'float32')], [gt]);
  ctx.node('Where', [gt, ctx.scalar(1, 'float32'), ctx.scalar(0, 'float32')], [stepped]);
  ctx.node('IsNaN', [x], [nan]);
  ctx.node('Where', [nan, x, stepped], [ctx.output()]);
};
function variant(spec: string, base: Variant): Variant {
  const v = { ...base, skip: [...base.skip] };
  for (const pair of spec.split(',').filter(Boolean)) {
    const [k, x] = pair.split('=') as [string, string];
    if (k === 'threads') v.threads = Number(x);
    else if (k === 'interop') v.interOp = Number(x);
    else if (k === 'opt') v.optimization = x;
    else if (k === 'mempattern') v.memPattern = x === '1';
    else if (k === 'arena') v.arena = x === '1';
    else if (k === 'ftz') v.ftz = x === '1';
    else if (k === 'nchwc') v.env = { ...v.env, ADAHESSIAN_NCHWC: x };
    else if (k === 'fgrad') v.env = { ...v.env, ADAHESSIAN_FILTER_GRAD: x };
    // fgradpairs=0: filter gradients sharing their taps stay separate products (filter-grad-pairs.ts).
    else if (k === 'fgradpairs') v.env = { ...v.env, ADAHESSIAN_FILTER_GRAD_PAIRS: x };
    // convbias=0: channel biases stay Adds after the NCHWc Convs (conv-bias.ts).
    else if (k === 'convbias') v.env = { ...v.env, ADAHESSIAN_CONV_BIAS: x };
    // convpairs=0: added pairs of NCHWc Convs stay two Convs and an Add (conv-pairs.ts).
    else if (k === 'convpairs') v.env = { ...v.env, ADAHESSIAN_CONV_PAIRS: x };
    // nchwcdup=0: equal NCHWc nodes stay twice (nchwc-duplicates.ts).
    else if (k === 'nchwcdup') v.env = { ...v.env, ADAHESSIAN_NCHWC_DUPLICATES: x };
    // maxpool=scan: tiling max-pool gradients by the position scan (max-pool-indices.ts).
    else if (k === 'maxpool') v.env = { ...v.env, ADAHESSIAN_MAX_POOL_GRAD: x };
    // poolmasks=0|1|2: relu masks at max pooling's winners (pool-relu-masks.ts).
    else if (k === 'poolmasks') v.env = { ...v.env, ADAHESSIAN_POOL_MASKS: x };
    else if (k === 'lnforward') v.env = { ...v.env, ADAHESSIAN_LN_FORWARD: x };
    // rowblocks=0: sums and means over [R, N]'s rows stay one reduction on several threads.
    else if (k === 'rowblocks') v.env = { ...v.env, ADAHESSIAN_ROW_BLOCKS: x };
    else if (k === 'skip') v.skip.push(...(x.split('+') as SimplifyPass[]));
    else if (k === 'lngrad') v.layerNormGradients = x === '1';
    else if (k === 'gelugrad') v.geluGradients = x === '1';
    else if (k === 'barematmul') v.elideMatMulReshapes = x === '1';
    else if (k === 'step') v.stepWhere = x === 'where';
    else if (k === 'disable') v.disable = x.split('+');
    else if (k === 'spin') v.spin = x === '1';
    else if (k === 'dynblock') v.dynamicBlockBase = Number(x);
    else if (k === 'affinity') v.affinity = x.split('+').join(';');
    else
      throw new Error(
        `--ab: unknown key '${k}' (threads, interop, opt, mempattern, arena, ftz, nchwc, skip, lngrad, lnforward, gelugrad, barematmul, step, disable, fgrad, fgradpairs, convbias, convpairs, nchwcdup, maxpool, poolmasks, rowblocks, spin, dynblock, affinity)`,
      );
  }
  return v;
}
const baseVariant = variant(arg('a', ''), {
  threads,
  interOp: 1,
  optimization,
  memPattern: true,
  arena: true,
  skip: [],
  ftz: false,
  env: {},
  layerNormGradients: false,
  geluGradients: false,
  elideMatMulReshapes: false,
  stepWhere: false,
  disable: [],
  spin: false,
  dynamicBlockBase: 0,
  affinity: '',
});

function session(v: Variant, profile: boolean) {
  const saved = Object.keys(v.env).map((k) => [k, process.env[k]] as const);
  Object.assign(process.env, v.env);
  const table = TRANSLATIONS as Record<string, (typeof TRANSLATIONS)[string]>;
  const step = table.Step!;
  if (v.stepWhere) table.Step = STEP_WITH_WHERE;
  const built = buildStepGraph(recording, outputs, {
    // As step-graph.ts: above one thread, kernels whose ONNX Runtime form races translate otherwise.
    threads: v.threads,
    skipRewrites: v.skip,
    layerNormGradients: v.layerNormGradients,
    geluGradients: v.geluGradients,
    elideMatMulReshapes: v.elideMatMulReshapes,
  });
  table.Step = step;
  for (const [k, x] of saved) {
    if (x === undefined) delete process.env[k];
    else process.env[k] = x;
  }
  const bytes = encodeOnnxModel(built.graph);
  const s = new runtime.binding.binding.InferenceSession() as unknown as Session;
  s.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
    intraOpNumThreads: v.threads,
    interOpNumThreads: v.interOp,
    executionMode: v.interOp > 1 ? 'parallel' : 'sequential',
    graphOptimizationLevel: v.optimization,
    ...(profile ? { enableProfiling: true, profileFilePrefix: join(dir, 'p') } : {}),
    logSeverityLevel: 3,
    enableCpuMemArena: v.arena,
    enableMemPattern: v.memPattern,
    extra: {
      session: {
        intra_op: { allow_spinning: v.spin ? '1' : '0' },
        ...(v.dynamicBlockBase > 0 ? { dynamic_block_base: String(v.dynamicBlockBase) } : {}),
        ...(v.affinity ? { intra_op_thread_affinities: v.affinity } : {}),
        ...(v.ftz ? { set_denormal_as_zero: '1' } : {}),
      },
      ...(v.disable.length > 0
        ? { optimization: { disable_specified_optimizers: v.disable.join(';') } }
        : {}),
    },
  });
  const feeds: Record<string, object> = {};
  built.inputExternals.forEach((e) => {
    const ext = recording.externals[e]!;
    feeds[`e${e}`] = new Tensor(ext.dtype, backend.readSync(ext.dataId!), ext.shape);
  });
  const results = outputs.map((o) => new Float32Array(o.shape.reduce((a, b) => a * b, 1)));
  const fetches: Record<string, object> = {};
  outputs.forEach((o, k) => (fetches[`out${k}`] = new Tensor('float32', results[k], o.shape)));
  return { built, run: () => s.run(feeds, fetches, {}), results, end: () => s.endProfiling() };
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const ab = arg('ab', '');
if (ab) {
  // Two sessions, run alternately (the machine's load drifts); medians and their ratio.
  const a = session(baseVariant, false);
  const b = session(variant(ab, baseVariant), false);
  const times = [[], []] as number[][];
  // Process CPU time too: on a loaded machine, less noisy than wall time (one thread each).
  const cpu = [[], []] as number[][];
  for (let r = 0; r < runs + 2; r++) {
    for (const [k, s] of [a, b].entries()) {
      const t = performance.now();
      const c = process.cpuUsage();
      s.run();
      const used = process.cpuUsage(c);
      if (r >= 2) {
        // the first two allocate
        times[k]!.push(performance.now() - t);
        cpu[k]!.push((used.user + used.system) / 1000);
      }
    }
  }
  let maxDiff = 0;
  // Also each output's largest difference over its largest magnitude (outputs differ in scale).
  let maxRel = 0;
  a.results.forEach((x, k) => {
    let diff = 0;
    let size = 0;
    x.forEach((v, i) => {
      diff = Math.max(diff, Math.abs(v - b.results[k]![i]!));
      size = Math.max(size, Math.abs(v));
    });
    maxDiff = Math.max(maxDiff, diff);
    if (diff > 0) maxRel = Math.max(maxRel, diff / size);
  });
  const [ma, mb] = times.map(median) as [number, number];
  console.log(
    `A '${arg('a', '')}' (${a.built.nodeCount} nodes): median ${ma.toFixed(1)} ms (${times[0]!.map((x) => x.toFixed(0)).join(', ')})\n` +
      `B '${ab}' (${b.built.nodeCount} nodes): median ${mb.toFixed(1)} ms (${times[1]!.map((x) => x.toFixed(0)).join(', ')})\n` +
      `B / A ${(mb / ma).toFixed(3)}; process CPU medians ${median(cpu[0]!).toFixed(1)} and ${median(cpu[1]!).toFixed(1)} ms, B / A ${(median(cpu[1]!) / median(cpu[0]!)).toFixed(3)}; largest difference between their outputs ${maxDiff} (${maxRel.toExponential(1)} of the output's largest magnitude)`,
  );
  process.exit(0);
}

const profiled = session(baseVariant, true);
const built = profiled.built;
console.log(
  `graph ${built.nodeCount} nodes from ${built.keptCalls} calls; ${threads} thread(s), optimisation '${optimization}'`,
);
const wall: number[] = [];
for (let r = 0; r < runs + 1; r++) {
  const t = performance.now();
  profiled.run();
  wall.push(performance.now() - t);
}
profiled.end();

type Event = { cat: string; name: string; dur: number; args?: { op_name?: string } };
const file = readdirSync(dir).find((f) => f.endsWith('.json'))!;
const events = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Event[];
const runEvents = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
// The first run allocates; the rest are counted.
const firstRunEnd = (runEvents[0] as unknown as { ts: number; dur: number }) ?? null;
const counted = events.filter(
  (e) =>
    e.cat === 'Node' &&
    e.name.endsWith('_kernel_time') &&
    (firstRunEnd == null || (e as unknown as { ts: number }).ts > firstRunEnd.ts + firstRunEnd.dur),
);
const perRun = (us: number) => us / 1000 / runs;
const byKey = new Map<string, { us: number; nodes: Set<string> }>();
const add = (key: string, e: Event) => {
  const o = byKey.get(key) ?? { us: 0, nodes: new Set<string>() };
  o.us += e.dur;
  o.nodes.add(e.name);
  byKey.set(key, o);
};
let total = 0;
for (const e of counted) {
  // ONNX Runtime names fused nodes after the first node they fused ("n123/MatmulTransposeFusion/").
  const index = Number(/^n(\d+)/.exec(e.name)?.[1] ?? -1);
  const call = index >= 0 ? (built.nodeCalls[index] ?? -1) : -1;
  const kernel = call >= 0 ? recording.calls[call]!.kernelName : '(outputs)';
  const phase = call >= 0 ? phaseOf(call) : '-';
  total += e.dur;
  add(`phase ${phase}`, e);
  add(`kernel ${kernel}`, e);
  add(`${phase} ${kernel} <- ${e.args?.op_name ?? '?'}`, e);
}
console.log(
  `node time ${perRun(total).toFixed(1)} ms per run; session.run median ${median(wall.slice(1)).toFixed(1)} ms ` +
    `(runs ${wall.map((w) => w.toFixed(0)).join(', ')}; the first allocates and is not counted)`,
);
const show = (prefix: string, n: number) => {
  const rows = [...byKey].filter(([k]) => k.startsWith(prefix)).sort((a, b) => b[1].us - a[1].us);
  for (const [k, v] of rows.slice(0, n)) {
    console.log(
      `  ${perRun(v.us).toFixed(1).padStart(7)} ms  ${String(v.nodes.size).padStart(4)} nodes  ${k.slice(prefix.length)}`,
    );
  }
};
console.log('by phase:');
show('phase ', 5);
console.log('by TF.js kernel:');
show('kernel ', 20);
console.log('by phase, TF.js kernel <- ONNX op:');
for (const p of ['forward', 'gradient', 'sweep']) {
  console.log(`  ${p}:`);
  show(`${p} `, top);
}
const dump = arg('dump', '');
if (dump) {
  // Every node with its kernel, phase, ONNX Runtime's shapes and time per run (for analysis).
  const timeOf = new Map<number, { ms: number; shapes: unknown }>();
  for (const e of counted) {
    const index = Number(/^n(\d+)/.exec(e.name)?.[1] ?? -1);
    const o = timeOf.get(index) ?? { ms: 0, shapes: (e as unknown as { args: unknown }).args };
    o.ms += perRun(e.dur);
    timeOf.set(index, o);
  }
  const small = new Map(
    (built.graph.tensorInitializers ?? [])
      .filter((i) => i.raw.byteLength <= 64)
      .map((i) => [i.name, { dims: i.dims, dtype: i.dtype, raw: Array.from(i.raw) }]),
  );
  const { writeFileSync } = await import('node:fs');
  writeFileSync(
    dump,
    JSON.stringify({
      small: Object.fromEntries(small),
      nodes: built.graph.nodes.map((n, i) => ({
        i,
        op: n.opType,
        inputs: n.inputs,
        outputs: n.outputs,
        attributes: n.attributes,
        call: built.nodeCalls[i],
        kernel: recording.calls[built.nodeCalls[i]!]?.kernelName,
        phase: built.nodeCalls[i]! >= 0 ? phaseOf(built.nodeCalls[i]!) : '-',
        ms: timeOf.get(i)?.ms ?? 0,
        args: timeOf.get(i)?.shapes,
      })),
    }),
  );
}
tf.dispose([ids, y, ...probes.flat(), ...result]);
