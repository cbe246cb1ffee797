/**
 * Where one training step goes, kernel by kernel: `tf.profile` of one step after warm-up
 * steps, per kernel name the calls and the milliseconds, the step's time outside kernels
 * (engine bookkeeping, the tape, the optimizer's JS), and the unprofiled ms per step (median).
 *
 *   npx tsx bench/speed/profile-step.ts --model transformer --optimizer adahessian
 *   npx tsx bench/speed/profile-step.ts --model resnet20 --optimizer adam --variant cpu
 *   npx tsx bench/speed/profile-step.ts --model cnn --steps 5 --calls 20 --top 30
 *   npx tsx bench/speed/profile-step.ts --by-shape 40      # also per kernel and input shapes
 *   npx tsx bench/speed/profile-step.ts --kernels BatchMatMul,Conv2D   # only these native
 *
 * Models at the sizes: `buildCharTransformer({ vocabSize: 96, contextLength: 64 })`
 * (defaults otherwise) on random ids, ResNet-20 on 28x28x1 (training-mode batch norm), the
 * small CNN; batch 64 unless --batch. Optimizers: adam, adahessian (f = 1), sgd.
 * `--fallbacks` also lists the kernel names the native path handed back to TF.js.
 */
import * as tf from '@tensorflow/tfjs';
import {
  adahessian,
  buildCharTransformer,
  buildResNet20,
  buildSmallCnn,
  softmaxCrossEntropy,
  useBackend,
} from '../../src/index.js';
import { enableNativeKernels, nativeKernelStatus } from '../../src/native/index.js';
import { arg } from './args.js';

tf.env().set('IS_TEST', false);

const modelName = arg('model', 'transformer');
const optimizerName = arg('optimizer', 'adahessian');
const variant = arg('variant', 'cpu+native');
const batch = Number(arg('batch', '64'));
const warmup = Number(arg('warmup', '2'));
const timedSteps = Number(arg('steps', '3'));
const top = Number(arg('top', '24'));
const calls = Number(arg('calls', '0'));
const byShape = Number(arg('by-shape', '0'));
const onlyKernels = arg('kernels', '');

const VOCAB = 96;
const CONTEXT = 64;

function setUp(): { step: () => void; params: number } {
  let model: tf.LayersModel;
  let x: tf.Tensor;
  let y: tf.Tensor;
  if (modelName === 'transformer') {
    model = buildCharTransformer({ vocabSize: VOCAB, contextLength: CONTEXT, seed: 1 });
    x = tf.randomUniform([batch, CONTEXT], 0, VOCAB, 'int32', 1);
    y = tf.tidy(() => tf.oneHot(tf.randomUniform([batch, CONTEXT], 0, VOCAB, 'int32', 2), VOCAB));
  } else if (modelName === 'resnet20' || modelName === 'cnn') {
    model =
      modelName === 'resnet20'
        ? buildResNet20({ inputShape: [28, 28, 1], seed: 1 })
        : buildSmallCnn({ seed: 1 });
    x = tf.randomNormal([batch, 28, 28, 1], 0, 1, 'float32', 1);
    y = tf.tidy(() => tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32', 2), 10));
  } else {
    throw new Error(`--model: unknown '${modelName}'; expected transformer, resnet20 or cnn`);
  }
  const optimizer =
    optimizerName === 'adam'
      ? tf.train.adam(1e-3)
      : optimizerName === 'sgd'
        ? tf.train.sgd(1e-2)
        : optimizerName === 'adahessian'
          ? adahessian({ hessianEvery: 1, seed: 1, learningRate: 0.005 })
          : null;
  if (optimizer == null) {
    throw new Error(`--optimizer: unknown '${optimizerName}'; expected adam, adahessian or sgd`);
  }
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const params = vars.reduce((n, v) => n + v.size, 0);
  const lossFn = () => softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor);
  return { step: () => void optimizer.minimize(lossFn, false, vars), params };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const load = () =>
  import('node:os').then((os) =>
    os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
  );

async function main(): Promise<void> {
  await useBackend(variant === 'wasm' ? 'wasm' : 'cpu');
  if (variant === 'cpu+native') {
    const status = enableNativeKernels(
      // Op by op: this profiles the kernels, not the step graphs of src/native/step-graph/.
      onlyKernels === ''
        ? { threads: 1, stepGraphs: false }
        : { threads: 1, stepGraphs: false, kernels: onlyKernels.split(',') },
    );
    if (!status.enabled) throw new Error(`native kernels unavailable: ${status.reason}`);
  } else if (variant !== 'cpu' && variant !== 'wasm') {
    throw new Error(`--variant: unknown '${variant}'; expected cpu, wasm or cpu+native`);
  }
  const { step, params } = setUp();
  for (let i = 0; i < warmup; i++) step();
  const loadBefore = await load();
  const times: number[] = [];
  for (let i = 0; i < timedSteps; i++) {
    const t0 = performance.now();
    step();
    times.push(performance.now() - t0);
  }
  const before = nativeKernelStatus();
  const t0 = performance.now();
  const info = await tf.profile(step);
  const profiledMs = performance.now() - t0;
  const after = nativeKernelStatus();
  const byKernel = new Map<string, { ms: number; calls: number }>();
  let kernelMs = 0;
  for (const k of info.kernels) {
    const e = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
    e.ms += k.kernelTimeMs as number;
    e.calls++;
    kernelMs += k.kernelTimeMs as number;
    byKernel.set(k.name, e);
  }
  console.log(
    `${modelName} (${params} parameters), ${optimizerName}, batch ${batch}, ${variant}; load ${loadBefore}`,
  );
  console.log(
    `unprofiled ms/step: median ${median(times).toFixed(1)} of [${times.map((t) => t.toFixed(0)).join(', ')}]`,
  );
  console.log(
    `profiled step: ${profiledMs.toFixed(1)} ms, ${info.kernels.length} kernel calls, ` +
      `${kernelMs.toFixed(1)} ms in kernels, ${(profiledMs - kernelMs).toFixed(1)} ms outside`,
  );
  if (variant === 'cpu+native') {
    console.log(
      `native calls ${after.nativeCalls - before.nativeCalls}, fallbacks ${after.fallbackCalls - before.fallbackCalls}, ` +
        `fused ${after.fusedCalls - before.fusedCalls}, graphs ${after.cachedGraphs}, last error ${after.lastError}`,
    );
  }
  const native = new Set(after.kernels);
  const rows = [...byKernel.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, top);
  for (const [name, e] of rows) {
    console.log(
      `  ${(native.has(name) ? '*' : ' ') + name.padEnd(28)} ${e.ms.toFixed(1).padStart(8)} ms ` +
        `${((100 * e.ms) / kernelMs).toFixed(1).padStart(5)} %  ${String(e.calls).padStart(5)} calls`,
    );
  }
  console.log('  (* = a native kernel exists for it; small calls may still fall back)');
  if (byShape > 0) {
    const groups = new Map<string, { ms: number; calls: number }>();
    for (const k of info.kernels) {
      const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
      const e = groups.get(key) ?? { ms: 0, calls: 0 };
      e.ms += k.kernelTimeMs as number;
      e.calls++;
      groups.set(key, e);
    }
    const sorted = [...groups.entries()].sort((a, b) => b[1].ms - a[1].ms);
    for (const [key, e] of sorted.slice(0, byShape)) {
      console.log(`    ${e.ms.toFixed(1).padStart(8)} ms ${String(e.calls).padStart(4)}x ${key}`);
    }
  }
  if (calls > 0) {
    const sorted = [...info.kernels].sort(
      (a, b) => (b.kernelTimeMs as number) - (a.kernelTimeMs as number),
    );
    for (const k of sorted.slice(0, calls)) {
      console.log(
        `    ${(k.kernelTimeMs as number).toFixed(2).padStart(8)} ms ${k.name} in ${JSON.stringify(k.inputShapes)} out ${JSON.stringify(k.outputShapes)}`,
      );
    }
  }
  console.log(`load after: ${await load()}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
