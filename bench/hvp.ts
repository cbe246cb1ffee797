/**
 * Cost of a Hessian-vector product relative to a gradient, per backend, for an MLP and a
 * small CNN built with tf.layers (batch 128), plus stock-vs-ours timings of the kernels
 * src/kernels replaces and a tf.profile breakdown of one HVP on wasm. All figures come from
 * this one run.
 *
 *   npm run bench              # full repetitions
 *   npm run bench -- --quick   # fewer repetitions
 *   npm run bench -- --profile-cpu   # also list the slowest kernels of one CNN HVP on cpu
 */
import * as tf from '@tensorflow/tfjs';
import { availableBackends, gradAndHvp, useBackend, type BackendName } from '../src/index.js';
import { stockKernel } from '../src/kernels/index.js';

const quick = process.argv.includes('--quick');
const BATCH = 128;

// TF.js's "install tfjs-node" banner stays: IS_TEST would silence it, but it also turns on
// per-kernel leak checks, which in this bench reported 4 stray data ids in fusedMatMul__op on
// wasm (after the cpu runs) and aborted the run.

interface Problem {
  name: string;
  build: () => tf.Sequential;
  inputShape: number[];
}

const PROBLEMS: Problem[] = [
  {
    name: 'MLP 784-256-10',
    inputShape: [784],
    build: () =>
      tf.sequential({
        layers: [
          tf.layers.dense({ units: 256, activation: 'relu', inputShape: [784] }),
          tf.layers.dense({ units: 10 }),
        ],
      }),
  },
  {
    name: 'CNN 28x28x1 c16-p-c32-p-d128',
    inputShape: [28, 28, 1],
    build: () =>
      tf.sequential({
        layers: [
          tf.layers.conv2d({
            filters: 16,
            kernelSize: 3,
            activation: 'relu',
            inputShape: [28, 28, 1],
          }),
          tf.layers.maxPooling2d({ poolSize: 2 }),
          tf.layers.conv2d({ filters: 32, kernelSize: 3, activation: 'relu' }),
          tf.layers.maxPooling2d({ poolSize: 2 }),
          tf.layers.flatten(),
          tf.layers.dense({ units: 128, activation: 'relu' }),
          tf.layers.dense({ units: 10 }),
        ],
      }),
  },
];

/** Softmax cross-entropy written so its Hessian is exact: mean(-sum(y * (z - logSumExp(z)))). */
function crossEntropy(labels: tf.Tensor, logits: tf.Tensor): tf.Scalar {
  const logProbs = tf.sub(logits, tf.logSumExp(logits, -1, true));
  return tf.mean(tf.neg(tf.sum(tf.mul(labels, logProbs), -1)));
}

interface Setup {
  model: tf.Sequential;
  vars: tf.Variable[];
  vectors: tf.Tensor[];
  lossFn: () => tf.Scalar;
  dispose: () => void;
}

function setUp(problem: Problem): Setup {
  const model = problem.build();
  const x = tf.randomUniform([BATCH, ...problem.inputShape]);
  const labels = tf.oneHot(tf.randomUniform([BATCH], 0, 10, 'int32'), 10);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const vectors = vars.map((v) => tf.randomNormal(v.shape));
  const lossFn = () => crossEntropy(labels, model.apply(x) as tf.Tensor);
  return {
    model,
    vars,
    vectors,
    lossFn,
    dispose: () => (tf.dispose([x, labels, ...vectors]), model.dispose()),
  };
}

function oneGradient(s: Setup): void {
  const { value, grads } = tf.variableGrads(s.lossFn, s.vars);
  value.dataSync();
  tf.dispose([value, ...Object.values(grads)]);
}

function oneGradAndHvp(s: Setup): void {
  const { loss, grads, hvp } = gradAndHvp(s.lossFn, s.vars, s.vectors);
  hvp[0]!.dataSync();
  tf.dispose([loss, ...grads, ...hvp]);
}

/** Median wall time (ms) of `reps` runs after `warmup` untimed ones. */
function medianMs(run: () => void, warmup: number, reps: number): number {
  for (let i = 0; i < warmup; i++) run();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    run();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

interface Row {
  backend: BackendName;
  problem: string;
  gradMs: number | null;
  hvpMs: number | null;
  note: string;
}

function errorLine(e: unknown): string {
  return (e instanceof Error ? `${e.name}: ${e.message}` : String(e)).split('\n')[0]!.slice(0, 160);
}

async function benchBackend(backend: BackendName): Promise<Row[]> {
  await useBackend(backend);
  const rows: Row[] = [];
  for (const problem of PROBLEMS) {
    const s = setUp(problem);
    const slow = backend === 'cpu' && problem.name.startsWith('CNN');
    const reps = quick ? 3 : slow ? 5 : 15;
    const row: Row = { backend, problem: problem.name, gradMs: null, hvpMs: null, note: '' };
    try {
      row.gradMs = medianMs(() => oneGradient(s), quick ? 1 : 2, reps);
    } catch (e) {
      row.note = `gradient fails: ${errorLine(e)}`;
    }
    try {
      row.hvpMs = medianMs(() => oneGradAndHvp(s), quick ? 1 : 2, reps);
    } catch (e) {
      row.note = `${row.note ? row.note + '; ' : ''}gradAndHvp fails: ${errorLine(e)}`;
    }
    s.dispose();
    rows.push(row);
  }
  return rows;
}

function printTable(rows: Row[]): void {
  const fmt = (ms: number | null) => (ms == null ? '-' : ms.toFixed(1));
  console.log(
    '\n| backend | model | gradient ms (median) | gradAndHvp ms (median) | ratio | note |',
  );
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) {
    const ratio = r.gradMs != null && r.hvpMs != null ? (r.hvpMs / r.gradMs).toFixed(2) : '-';
    console.log(
      `| ${r.backend} | ${r.problem} | ${fmt(r.gradMs)} | ${fmt(r.hvpMs)} | ${ratio} | ${r.note} |`,
    );
  }
}

interface KernelComparison {
  backend: BackendName;
  kernelName: string;
  label: string;
  inputs: () => tf.NamedTensorMap;
  attrs: Record<string, unknown>;
  /** Stock runs to time (the slow cpu kernel takes seconds, so once). */
  stockRuns: number;
}

/** The layers the CNN above trains, at batch 128: stock kernel vs ours, same run. */
const KERNEL_COMPARISONS: KernelComparison[] = [
  {
    backend: 'cpu',
    kernelName: 'Conv2DBackpropFilter',
    label: 'x [128,13,13,16], dy [128,11,11,32], 3x3 valid',
    inputs: () => ({
      x: tf.randomNormal([BATCH, 13, 13, 16]),
      dy: tf.randomNormal([BATCH, 11, 11, 32]),
    }),
    attrs: { strides: 1, pad: 'valid', dataFormat: 'NHWC', filterShape: [3, 3, 16, 32] },
    stockRuns: 1,
  },
  {
    backend: 'wasm',
    kernelName: 'Conv2DBackpropInput',
    label: 'dy [128,11,11,32], filter 3x3x16x32 valid',
    inputs: () => ({
      dy: tf.randomNormal([BATCH, 11, 11, 32]),
      filter: tf.randomNormal([3, 3, 16, 32]),
    }),
    attrs: { strides: 1, pad: 'valid', dataFormat: 'NHWC', inputShape: [BATCH, 13, 13, 16] },
    stockRuns: 5,
  },
  {
    backend: 'cpu',
    kernelName: 'MaxPoolGrad',
    label: 'x [128,26,26,16], 2x2 stride 2',
    inputs: () => {
      const input = tf.randomNormal([BATCH, 26, 26, 16]) as tf.Tensor4D;
      const output = tf.maxPool(input, 2, 2, 'valid');
      return { dy: tf.randomNormal(output.shape), input, output };
    },
    attrs: { filterSize: 2, strides: 2, pad: 'valid' },
    stockRuns: 3,
  },
  {
    backend: 'wasm',
    kernelName: 'MaxPoolGrad',
    label: 'x [128,26,26,16], 2x2 stride 2 (stock is wrong for all-negative windows)',
    inputs: () => {
      const input = tf.randomNormal([BATCH, 26, 26, 16]) as tf.Tensor4D;
      const output = tf.maxPool(input, 2, 2, 'valid');
      return { dy: tf.randomNormal(output.shape), input, output };
    },
    attrs: { filterSize: 2, strides: 2, pad: 'valid' },
    stockRuns: 5,
  },
];

async function stockVersusOurs(c: KernelComparison): Promise<string> {
  await useBackend(c.backend);
  const stock = stockKernel(c.kernelName, c.backend);
  const inputs = c.inputs();
  const attrs = c.attrs as tf.NamedAttrMap;
  const ours = () => (tf.engine().runKernel(c.kernelName, inputs, attrs) as tf.Tensor).dispose();
  const oursMs = medianMs(ours, 1, quick ? 3 : 7);
  let stockMs = NaN;
  if (stock != null) {
    // Replaced before the backend initialised, so a wasm kernel's one-time setup never ran.
    stock.setupFunc?.(tf.backend());
    const runStock = () => {
      const out = stock.kernelFunc({ inputs, backend: tf.backend(), attrs }) as tf.TensorInfo;
      tf.backend().disposeData(out.dataId);
    };
    stockMs = medianMs(runStock, c.stockRuns > 1 ? 1 : 0, c.stockRuns);
  }
  tf.dispose(Object.values(inputs));
  return (
    `| ${c.backend} | ${c.kernelName} | ${c.label} | ${stockMs.toFixed(1)} | ` +
    `${oursMs.toFixed(1)} | ${(stockMs / oursMs).toFixed(1)}x |`
  );
}

/** The slowest kernels of one gradAndHvp (or gradient, if the HVP fails) on `backend`. */
async function profileOne(backend: BackendName, problem: Problem): Promise<void> {
  await useBackend(backend);
  const s = setUp(problem);
  let what = 'gradAndHvp';
  try {
    oneGradAndHvp(s); // warm-up, and find out whether the HVP runs
  } catch {
    what = 'gradient';
  }
  const run = what === 'gradAndHvp' ? oneGradAndHvp : oneGradient;
  const t0 = performance.now();
  const info = await tf.profile(() => run(s));
  const wallMs = performance.now() - t0;
  const byKernel = new Map<string, { ms: number; calls: number }>();
  let totalMs = 0;
  for (const k of info.kernels) {
    const ms = Number(k.kernelTimeMs) || 0;
    totalMs += ms;
    const entry = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
    entry.ms += ms;
    entry.calls += 1;
    byKernel.set(k.name, entry);
  }
  const top = [...byKernel.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 10);
  console.log(
    `\ntf.profile, one ${what} of ${problem.name} on ${backend}: ${info.kernels.length} kernel calls, ` +
      `${totalMs.toFixed(1)} ms in kernels of ${wallMs.toFixed(1)} ms wall (profiled run)`,
  );
  console.log('| kernel | ms | calls | share of kernel time |');
  console.log('|---|---|---|---|');
  for (const [name, { ms, calls }] of top) {
    console.log(
      `| ${name} | ${ms.toFixed(1)} | ${calls} | ${((100 * ms) / totalMs).toFixed(0)}% |`,
    );
  }
  s.dispose();
}

async function main(): Promise<void> {
  const backends = await availableBackends();
  console.log(
    `adahessian HVP benchmark (${quick ? 'quick' : 'full'}), batch ${BATCH}, backends: ${backends.join(', ')}; ` +
      `Node ${process.version}, tfjs ${tf.version_core}`,
  );
  const rows: Row[] = [];
  for (const backend of backends) rows.push(...(await benchBackend(backend)));
  printTable(rows);
  console.log('\n| backend | kernel | shapes | stock ms | ours ms | speed-up |');
  console.log('|---|---|---|---|---|---|');
  for (const c of KERNEL_COMPARISONS) {
    if (backends.includes(c.backend)) console.log(await stockVersusOurs(c));
  }
  if (backends.includes('wasm')) {
    for (const problem of PROBLEMS) await profileOne('wasm', problem);
  }
  if (process.argv.includes('--profile-cpu')) await profileOne('cpu', PROBLEMS[1]!);
}

await main();
