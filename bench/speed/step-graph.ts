/**
 * Step graphs against op by op (see src/native/step-graph/step-graph.ts): ms per char-transformer
 * step for AdaHessian f = 1 (minimize) and a first-order step (loss and gradients, then Adam's
 * applyGradients), each op by op on cpu + native kernels and replayed from one ONNX graph, in
 * the same process, interleaved round by round (the machine is shared: only ratios from one
 * run mean anything); medians over rounds. Also the graphs' compile time and the replay's split
 * between the stubbed forward pass (finding the batch) and ONNX Runtime.
 *
 *   npx tsx bench/speed/step-graph.ts                      # defaults below, 3 rounds of 3 steps
 *   npx tsx bench/speed/step-graph.ts --rounds 5 --steps 2 --optimization basic --threads 2
 *   npx tsx bench/speed/step-graph.ts --d 16 --context 8 --vocab 11 --batch 4   # tiny
 *   npx tsx bench/speed/step-graph.ts --profile /tmp/sg --rounds 2 --steps 3
 *       # replayed AdaHessian steps only: their split (stubbed forward, ONNX Runtime, the rest)
 *       # and ONNX Runtime's per-node profile by op type (bench/speed/step-graph-profile.ts
 *       # credits it to TF.js kernels and phases instead)
 *
 * At the default sizes, PyTorch's twin (bench/speed/torch_step.py, Debian's python3-torch, the
 * same thread count) runs in the same rounds; --no-torch leaves it out.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import * as tf from '@tensorflow/tfjs';
import {
  adahessian,
  buildCharTransformer,
  softmaxCrossEntropy,
  useBackend,
} from '../../src/index.js';
import { enableNativeKernels } from '../../src/native/index.js';
import { createStepGraphProvider } from '../../src/native/step-graph/enable.js';
import { installStepGraphProvider } from '../../src/native/step-graph/hook.js';

tf.env().set('IS_TEST', false);

function arg(name: string, fallback: number): number;
function arg(name: string, fallback: string): string;
function arg(name: string, fallback: number | string): number | string {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = process.argv[i + 1]!;
  return typeof fallback === 'number' ? Number(v) : v;
}

const d = arg('d', 64);
const context = arg('context', 64);
const vocab = arg('vocab', 96);
const batch = arg('batch', 64);
const rounds = arg('rounds', 3);
const steps = arg('steps', 3);
const threads = arg('threads', 1);
const optimization = arg('optimization', 'all') as 'disabled' | 'basic' | 'extended' | 'all';
/** --profile PREFIX: only replayed AdaHessian steps, ONNX Runtime's per-node profile summarised. */
const profilePrefix = arg('profile', '');

await useBackend('cpu');
// Step graphs off globally: this benchmark installs its own provider around the replayed configs.
const native = enableNativeKernels({ threads, stepGraphs: false });
if (!native.enabled) throw new Error(`native kernels unavailable: ${native.reason}`);

const model = buildCharTransformer({
  vocabSize: vocab,
  contextLength: context,
  dModel: d,
  seed: 1,
});
const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
const params = vars.reduce((a, v) => a + v.size, 0);
/** A new batch every step, as in training (the replay must find it). */
let batchSeed = 0;
function nextLossFn(): { f: () => tf.Scalar; dispose: () => void } {
  batchSeed++;
  const ids = tf.randomUniform([batch, context], 0, vocab, 'int32', batchSeed);
  const y = tf.tidy(() =>
    tf.oneHot(tf.randomUniform([batch, context], 0, vocab, 'int32', 1000 + batchSeed), vocab),
  );
  return {
    f: () => softmaxCrossEntropy(y, model.apply(ids) as tf.Tensor),
    dispose: () => tf.dispose([ids, y]),
  };
}

let pending = null as (() => void) | null;
function nextStepFn(): () => tf.Scalar {
  pending?.();
  const { f, dispose } = nextLossFn();
  pending = dispose;
  return f;
}

const graphs = createStepGraphProvider({
  threads,
  optimization,
  ...(profilePrefix ? { profilePrefix } : {}),
});
const withGraphs = <T>(body: () => T): T => {
  const uninstall = installStepGraphProvider(graphs.provider);
  try {
    return body();
  } finally {
    uninstall();
  }
};

// The weights move under each optimizer; a small rate keeps the loss finite for the timings.
const ahOps = adahessian({ hessianEvery: 1, seed: 1, learningRate: 1e-4 });
const ahGraph = adahessian({ hessianEvery: 1, seed: 1, learningRate: 1e-4 });
const adamOps = tf.train.adam(1e-4);
const adamGraph = tf.train.adam(1e-4);

if (profilePrefix) {
  await profileReplays();
  process.exit(0);
}

/**
 * Where a replayed AdaHessian step's time goes: per step, the stubbed forward pass, ONNX
 * Runtime (feeds, run) and the rest (probes, the fused update, wrapping outputs); then ONNX
 * Runtime's own per-node profile of those replays, by op type and the costliest nodes.
 */
async function profileReplays(): Promise<void> {
  const { readFileSync, readdirSync } = await import('node:fs');
  const { dirname, basename, join } = await import('node:path');
  const opt = adahessian({ hessianEvery: 1, seed: 1, learningRate: 1e-4 });
  for (let i = 0; i < 3; i++) withGraphs(() => opt.minimize(nextStepFn(), false, vars));
  const before = graphs.status();
  const n = rounds * steps;
  const totals: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    withGraphs(() => opt.minimize(nextStepFn(), false, vars));
    totals.push(performance.now() - t);
  }
  pending?.();
  const after = graphs.status();
  const replays = after.replays - before.replays;
  const total = totals.reduce((a, b) => a + b, 0) / n;
  const stub = (after.stubMs - before.stubMs) / replays;
  const graph = (after.graphMs - before.graphMs) / replays;
  console.log(
    `${n} replayed AdaHessian steps (${replays} replays): ${total.toFixed(1)} ms/step = stubbed forward ` +
      `${stub.toFixed(1)} + ONNX Runtime ${graph.toFixed(1)} + the rest ${(total - stub - graph).toFixed(1)} ` +
      `(steps ${totals.map((x) => x.toFixed(0)).join(', ')})`,
  );
  graphs.all.forEach((s) => s.dispose()); // ends the profiles
  const dir = dirname(profilePrefix) || '.';
  const files = readdirSync(dir)
    .filter((f) => f.startsWith(basename(profilePrefix)) && f.endsWith('.json'))
    .map((f) => join(dir, f));
  for (const file of files) {
    type Event = { cat: string; name: string; dur: number; args?: { op_name?: string } };
    const events = (JSON.parse(readFileSync(file, 'utf8')) as Event[]).filter(
      (e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'),
    );
    if (events.length === 0) continue;
    const runs = (JSON.parse(readFileSync(file, 'utf8')) as Event[]).filter(
      (e) => e.cat === 'Session' && e.name === 'model_run',
    ).length;
    const byOp = new Map<string, { ms: number; count: number }>();
    const byNode = new Map<string, number>();
    for (const e of events) {
      const op = e.args?.op_name ?? '?';
      const o = byOp.get(op) ?? { ms: 0, count: 0 };
      o.ms += e.dur / 1000 / runs;
      o.count += 1 / runs;
      byOp.set(op, o);
      byNode.set(e.name, (byNode.get(e.name) ?? 0) + e.dur / 1000 / runs);
    }
    const sum = [...byOp.values()].reduce((a, o) => a + o.ms, 0);
    console.log(`${file}: ${runs} runs, ${sum.toFixed(1)} ms of node time per run`);
    for (const [op, o] of [...byOp].sort((a, b) => b[1].ms - a[1].ms).slice(0, 16)) {
      console.log(
        `  ${op.padEnd(22)} ${o.ms.toFixed(1).padStart(7)} ms  ${o.count.toFixed(0)} nodes`,
      );
    }
    console.log('  costliest nodes:');
    for (const [name, ms] of [...byNode].sort((a, b) => b[1] - a[1]).slice(0, 20)) {
      console.log(`    ${ms.toFixed(2).padStart(7)} ms  ${name.replace(/_kernel_time$/, '')}`);
    }
  }
}

/** PyTorch's twin (torch_step.py) on the same thread count, at the default sizes only. */
const isDefault = d === 64 && context === 64 && vocab === 96;
const torch = isDefault && !process.argv.includes('--no-torch') ? startTorch() : null;
function startTorch() {
  const script = new URL('./torch_step.py', import.meta.url).pathname;
  const n = String(threads);
  const child = spawn('/usr/bin/python3', ['-W', 'ignore', script], {
    stdio: 'pipe',
    env: { ...process.env, OPENBLAS_NUM_THREADS: n, OMP_NUM_THREADS: n, MKL_NUM_THREADS: n },
  });
  child.stderr.on('data', (b: Buffer) => process.stderr.write(`[torch] ${b.toString()}`));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return {
    async request(req: object): Promise<Record<string, unknown>> {
      child.stdin.write(`${JSON.stringify(req)}\n`);
      const { value, done } = await lines.next();
      if (done) throw new Error('the PyTorch reference exited');
      return JSON.parse(value as string) as Record<string, unknown>;
    },
    close: () => child.stdin.end(),
  };
}
if (torch) {
  const info = await torch.request({ threads });
  const theirs = (await torch.request({ count: 'transformer' }))['parameters'];
  console.log(
    `PyTorch ${String(info['version'])} on ${String(info['threads'])} thread(s); twin parameters ${String(theirs)}`,
  );
  if (theirs !== params)
    throw new Error(`the twin has ${String(theirs)} parameters, ours ${params}`);
}

type Config = { name: string; step: () => void | Promise<void> };
const configs: Config[] = [
  { name: 'AdaHessian f=1, op by op', step: () => void ahOps.minimize(nextStepFn(), false, vars) },
  {
    name: 'AdaHessian f=1, replayed',
    step: () => void withGraphs(() => ahGraph.minimize(nextStepFn(), false, vars)),
  },
  {
    name: 'first order (Adam), op by op',
    step: () => void adamOps.minimize(nextStepFn(), false, vars),
  },
  {
    name: 'first order (Adam), replayed',
    step: () => {
      const f = nextStepFn();
      const r = graphs.provider.gradient(adamGraph, f, vars)!;
      const named = vars.flatMap((v, i) =>
        r.grads[i] ? [{ name: v.name, tensor: r.grads[i] }] : [],
      );
      adamGraph.applyGradients(named);
      tf.dispose([r.loss, ...named.map((n) => n.tensor)]);
    },
  },
];
const torchStep = (optimizer: string) => async () => {
  const r = await torch!.request({ model: 'transformer', optimizer, batch, steps: 1 });
  torchMs.push({ optimizer, ms: r['ms'] as number });
};
const torchMs: { optimizer: string; ms: number }[] = [];
if (torch) {
  configs.push({ name: 'AdaHessian f=1, PyTorch', step: torchStep('adahessian-f1') });
  configs.push({ name: 'first order (Adam), PyTorch', step: torchStep('adam') });
}

console.log(
  `char transformer d ${d}, context ${context}, vocab ${vocab}, batch ${batch}: ${params} parameters; ` +
    `cpu + native (${threads} thread(s)), ORT optimisation '${optimization}'; ${rounds} rounds x ${steps} steps`,
);
const t0 = performance.now();
for (const c of configs) {
  const ts = performance.now();
  for (let i = 0; i < 3; i++) await c.step(); // two captures, then the compiled graph's first run
  console.log(`warm-up ${c.name}: ${((performance.now() - ts) / 3).toFixed(0)} ms/step`);
}
const warm = graphs.status();
console.log(
  `graphs compiled ${warm.compiled} in ${warm.compileMs.toFixed(0)} ms; replays ${warm.replays}; ` +
    `last reason: ${warm.lastReason || '-'} (warm-up ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
);
const times = new Map<string, number[]>(configs.map((c) => [c.name, []]));
for (let r = 0; r < rounds; r++) {
  for (const c of configs) {
    const ts = performance.now();
    for (let i = 0; i < steps; i++) await c.step();
    times.get(c.name)!.push((performance.now() - ts) / steps);
  }
}
pending?.();
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const med = new Map([...times].map(([k, v]) => [k, median(v)]));
for (const [name, v] of times) {
  console.log(
    `${name.padEnd(32)} median ${med.get(name)!.toFixed(1).padStart(8)} ms  rounds ${v.map((x) => x.toFixed(0)).join(', ')}`,
  );
}
const ratio = (a: string, b: string) => (med.get(a)! / med.get(b)!).toFixed(2);
console.log(
  `op by op / replayed: AdaHessian ${ratio('AdaHessian f=1, op by op', 'AdaHessian f=1, replayed')}, first order ${ratio('first order (Adam), op by op', 'first order (Adam), replayed')}`,
);
if (torch) {
  // PyTorch's own timing of its steps (without the pipe), medians over rounds.
  const their = (o: string, name: string) => {
    const v = torchMs.filter((t) => t.optimizer === o).map((t) => t.ms);
    med.set(name, median(v.slice(-rounds * steps)));
  };
  their('adahessian-f1', 'AdaHessian f=1, PyTorch');
  their('adam', 'first order (Adam), PyTorch');
  console.log(
    `PyTorch's own step times (medians): AdaHessian ${med.get('AdaHessian f=1, PyTorch')!.toFixed(1)} ms, Adam ${med.get('first order (Adam), PyTorch')!.toFixed(1)} ms`,
  );
  console.log(
    `ours / PyTorch: AdaHessian op by op ${ratio('AdaHessian f=1, op by op', 'AdaHessian f=1, PyTorch')}, replayed ${ratio('AdaHessian f=1, replayed', 'AdaHessian f=1, PyTorch')}; ` +
      `Adam op by op ${ratio('first order (Adam), op by op', 'first order (Adam), PyTorch')}, replayed ${ratio('first order (Adam), replayed', 'first order (Adam), PyTorch')}`,
  );
  torch.close();
}
const end = graphs.status();
console.log(
  `replays ${end.replays}, op-by-op steps of the replayed configs ${end.opByOp}; replay time split: stubbed forward ` +
    `${(end.stubMs / Math.max(end.replays, 1)).toFixed(1)} ms, ONNX Runtime ${(end.graphMs / Math.max(end.replays, 1)).toFixed(1)} ms per replay`,
);
