/**
 * A/B of two sets of native kernels on one training step, interleaved in one process (the
 * machine is shared and its load drifts): each round enables set A, warms up, times `--steps`
 * steps (wall and process CPU time), then the same for set B. Prints medians and B / A.
 *
 *   npx tsx bench/speed/kernel-ab.ts --model transformer --optimizer adahessian --rounds 3
 *   npx tsx bench/speed/kernel-ab.ts --model resnet20 --optimizer adam --steps 2
 *   npx tsx bench/speed/kernel-ab.ts --a Transpose,Softmax   # A: the fifth session's + these
 *
 *   npx tsx bench/speed/kernel-ab.ts --model transformer --optimizer adam --torch  # + PyTorch
 *
 * A is the fifth session's kernel set (FIFTH_SESSION below) plus `--a`'s names; B is every
 * kernel (NATIVE_KERNEL_NAMES). Both op by op: step graphs (src/native/step-graph/) off.
 * Caveats: Sum's JS path (reduce.ts) and the float32 reading of cast-shared arrays are in
 * both. Models and batch as bench/speed/profile-step.ts. With --torch, the PyTorch twin
 * (bench/speed/torch_step.py, one thread) runs the same steps in each round, in between.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import * as tf from '@tensorflow/tfjs';
import {
  adahessian,
  buildCharTransformer,
  buildResNet20,
  buildSmallCnn,
  softmaxCrossEntropy,
  useBackend,
} from '../../src/index.js';
import { enableNativeKernels, NATIVE_KERNEL_NAMES } from '../../src/native/index.js';
import { arg } from './args.js';

tf.env().set('IS_TEST', false);

/** The kernels taken over before the sixth session. */
const FIFTH_SESSION = [
  'BatchMatMul',
  '_FusedMatMul',
  'Conv2D',
  'FusedConv2D',
  'Conv2DBackpropInput',
  'Conv2DBackpropFilter',
  'DepthwiseConv2dNative',
  'FusedDepthwiseConv2D',
  'DepthwiseConv2dNativeBackpropInput',
  'DepthwiseConv2dNativeBackpropFilter',
  'Add',
  'Sub',
  'Multiply',
  'RealDiv',
  'Sum',
  'Tile',
  'Relu',
  'Step',
  'MaxPool',
  'AvgPool',
  'MaxPoolGrad',
  'MaxPoolGradTranspose',
];

const modelName = arg('model', 'transformer');
const optimizerName = arg('optimizer', 'adahessian');
const batch = Number(arg('batch', '64'));
const rounds = Number(arg('rounds', '3'));
const steps = Number(arg('steps', '3'));
const extraA = arg('a', '')
  .split(',')
  .filter((s) => s !== '');
const setA = [...FIFTH_SESSION, ...extraA].filter((k) => NATIVE_KERNEL_NAMES.includes(k));
const setB = [...NATIVE_KERNEL_NAMES];

function setUp(): () => void {
  let model: tf.LayersModel;
  let x: tf.Tensor;
  let y: tf.Tensor;
  if (modelName === 'transformer') {
    model = buildCharTransformer({ vocabSize: 96, contextLength: 64, seed: 1 });
    x = tf.randomUniform([batch, 64], 0, 96, 'int32', 1);
    y = tf.tidy(() => tf.oneHot(tf.randomUniform([batch, 64], 0, 96, 'int32', 2), 96));
  } else {
    model =
      modelName === 'resnet20'
        ? buildResNet20({ inputShape: [28, 28, 1], seed: 1 })
        : buildSmallCnn({ seed: 1 });
    x = tf.randomNormal([batch, 28, 28, 1], 0, 1, 'float32', 1);
    y = tf.tidy(() => tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32', 2), 10));
  }
  const optimizer =
    optimizerName === 'adam'
      ? tf.train.adam(1e-3)
      : adahessian({ hessianEvery: 1, seed: 1, learningRate: 0.005 });
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const lossFn = () => softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor);
  return () => void optimizer.minimize(lossFn, false, vars);
}

/** bench/speed/torch_step.py as a server (one JSON request and answer per line), one thread. */
function startTorch() {
  const script = new URL('./torch_step.py', import.meta.url).pathname;
  const env = { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1' };
  const child = spawn('/usr/bin/python3', ['-W', 'ignore', script], { stdio: 'pipe', env });
  child.stderr.on('data', (d: Buffer) => process.stderr.write(`[torch] ${d.toString()}`));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return {
    ask: async (req: object): Promise<Record<string, unknown>> => {
      child.stdin.write(`${JSON.stringify(req)}\n`);
      const { value, done } = await lines.next();
      if (done) throw new Error('the PyTorch reference exited');
      return JSON.parse(value as string) as Record<string, unknown>;
    },
    close: () => child.stdin.end(),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const load = async () =>
  (await import('node:os'))
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

async function main(): Promise<void> {
  await useBackend('cpu');
  const step = setUp();
  console.log(
    `${modelName} ${optimizerName} batch ${batch}: A = fifth session's ${setA.length} kernels, B = all ${setB.length}; load ${await load()}`,
  );
  const wall: Record<'A' | 'B' | 'torch', number[]> = { A: [], B: [], torch: [] };
  const cpu: Record<'A' | 'B' | 'torch', number[]> = { A: [], B: [], torch: [] };
  const torch = process.argv.includes('--torch') ? startTorch() : null;
  if (torch) console.log(`PyTorch ${(await torch.ask({ threads: 1 }))['version']}, 1 thread`);
  for (let round = 0; round < rounds; round++) {
    for (const [name, kernels] of [
      ['A', setA],
      ['B', setB],
    ] as const) {
      const status = enableNativeKernels({ threads: 1, kernels, stepGraphs: false });
      if (!status.enabled) throw new Error(status.reason);
      for (let i = 0; i < 2; i++) step();
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < steps; i++) step();
      wall[name].push((performance.now() - t0) / steps);
      const c = process.cpuUsage(c0);
      cpu[name].push((c.user + c.system) / 1000 / steps);
    }
    if (torch) {
      const r = await torch.ask({
        model: modelName,
        optimizer: optimizerName === 'adam' ? 'adam' : 'adahessian-f1',
        batch,
        steps,
      });
      wall.torch.push(r['ms'] as number);
      cpu.torch.push(r['cpu_ms'] as number);
    }
    process.stderr.write(`round ${round + 1}/${rounds}\n`);
  }
  torch?.close();
  const list = (v: number[]) =>
    `${median(v).toFixed(1)} ms [${v.map((t) => t.toFixed(0)).join(', ')}]`;
  const row = (label: string, v: Record<'A' | 'B' | 'torch', number[]>) =>
    console.log(
      `${label}: A ${list(v.A)}, B ${list(v.B)}, B / A ${(median(v.B) / median(v.A)).toFixed(2)}` +
        (v.torch.length > 0
          ? `; PyTorch ${list(v.torch)}, A / PyTorch ${(median(v.A) / median(v.torch)).toFixed(2)}, ` +
            `B / PyTorch ${(median(v.B) / median(v.torch)).toFixed(2)}`
          : ''),
    );
  row('wall ms/step', wall);
  row('process CPU ms/step', cpu);
  console.log(`load after: ${await load()}`);
}

await main();
