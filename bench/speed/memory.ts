/**
 * Memory (and time) of one training configuration per process, so that the process's peak
 * RSS (getrusage's maxRSS) is this configuration's: ResNet-20 on 28x28x1 with batch norm, as
 * the issue measured it, the small CNN, or the char transformer (buildCharTransformer's
 * defaults, batch 64 sequences of 64 ids, as bench/speed/step.ts). Prints one JSON line: ms per step, peak RSS, the
 * engine's peak tensor bytes inside a step (tf.profile; it counts shared data once per tensor,
 * so it runs above RSS), tensors left after the steps, and on wasm the heap size.
 *
 *   npx tsx bench/speed/memory.ts --variant cpu --optimizer adahessian --batch 64
 *   npx tsx bench/speed/memory.ts --variant wasm --optimizer adam --model small-cnn
 *   npx tsx bench/speed/memory.ts --variant cpu+native --steps 3
 *   npx tsx bench/speed/memory.ts --variant cpu+native --steps 4 --step-graph-arena off
 *   npx tsx bench/speed/memory.ts --variant cpu+native --model transformer --steps 5
 *   npx tsx bench/speed/memory.ts --variant cpu+native --threads 2 --steps 5
 *
 * PyTorch's figure for the same step: python3 bench/speed/torch_memory.py (see PERFORMANCE.md).
 *
 * Where the memory sits (docs/PERFORMANCE.md, seventh session, "ResNet-20's memory with step
 * graphs"): RSS after each step, minor page faults per step (memory the allocator gave back
 * and took again: ONNX Runtime without its arena), and on Linux the resident size of glibc's
 * main heap ([heap]: where TF.js's op-by-op arrays live, kept after they are freed) and of the
 * largest other anonymous mapping (ONNX Runtime's arena, when a step graph ran with it), and
 * whether a step graph that started without the arena was opened again with it (arena.ts).
 * glibc's malloc is tuned only by environment variables read at start, e.g.
 *   MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_MMAP_THRESHOLD_=33554432 npx tsx bench/speed/memory.ts ...
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import {
  adahessian,
  buildCharTransformer,
  buildResNet20,
  buildSmallCnn,
  softmaxCrossEntropy,
  useBackend,
} from '../../src/index.js';
import { enableNativeKernels, stepGraphsStatus } from '../../src/native/index.js';
import { arg } from './args.js';

tf.env().set('IS_TEST', false);

const variant = arg('variant', 'cpu');
const optimizerName = arg('optimizer', 'adahessian');
const modelName = arg('model', 'resnet20');
if (!['resnet20', 'small-cnn', 'transformer'].includes(modelName))
  throw new Error(`--model: '${modelName}'; expected resnet20, small-cnn or transformer`);
const batch = Number(arg('batch', '64'));
const TRANSFORMER_CONTEXT = 64;
const TRANSFORMER_VOCAB = 96;
const steps = Number(arg('steps', '3'));
/** ONNX Runtime's intra-op threads (the native kernels and step graphs), as step.ts --threads. */
const threads = Number(arg('threads', '1'));

async function main(): Promise<void> {
  await useBackend(variant === 'wasm' ? 'wasm' : 'cpu');
  if (variant === 'cpu+native') {
    const poolMb = arg('pool-mb', '');
    const status = enableNativeKernels({
      threads,
      ...(poolMb === '' ? {} : { outputPoolBytes: Number(poolMb) * 2 ** 20 }),
      // --step-graph-arena on|off: ONNX Runtime's arena for step graphs; without the flag,
      // enableNativeKernels' default (off when glibc keeps freed memory: malloc-tuning.ts).
      ...(arg('step-graph-arena', '') === ''
        ? {}
        : { stepGraphMemoryArena: arg('step-graph-arena', '') !== 'off' }),
    });
    if (!status.enabled) throw new Error(status.reason);
  }
  const transformer = modelName === 'transformer';
  const model =
    modelName === 'resnet20'
      ? buildResNet20({ inputShape: [28, 28, 1], seed: 1 })
      : transformer
        ? buildCharTransformer({
            vocabSize: TRANSFORMER_VOCAB,
            contextLength: TRANSFORMER_CONTEXT,
            seed: 1,
          })
        : buildSmallCnn({ seed: 1 });
  const optimizer = optimizerName === 'adam' ? tf.train.adam(1e-3) : adahessian({ seed: 1 });
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const x = transformer
    ? tf.randomUniform([batch, TRANSFORMER_CONTEXT], 0, TRANSFORMER_VOCAB, 'int32', 1)
    : tf.randomNormal([batch, 28, 28, 1], 0, 1, 'float32', 1);
  const y = transformer
    ? tf.oneHot(
        tf.randomUniform([batch, TRANSFORMER_CONTEXT], 0, TRANSFORMER_VOCAB, 'int32', 2),
        TRANSFORMER_VOCAB,
      )
    : tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32', 2), 10).toFloat();
  const times: number[] = [];
  const rssAfterStepMB: number[] = [];
  const minorFaultsPerStep: number[] = [];
  let peakTensorBytes = 0;
  let baseline = 0;
  for (let i = 0; i < steps; i++) {
    const start = performance.now();
    const faultsBefore = process.resourceUsage().minorPageFault;
    const step = () => {
      const cost = optimizer.minimize(
        () => softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor),
        true,
        vars,
      );
      cost?.dataSync();
      cost?.dispose();
    };
    // tf.profile times kernels with the backend's async timer, which on wasm turns a kernel's
    // error (a full heap) into an unhandled rejection and a confusing TypeError: not there.
    if (variant === 'wasm') step();
    else peakTensorBytes = Math.max(peakTensorBytes, (await tf.profile(step)).peakBytes);
    times.push(performance.now() - start);
    minorFaultsPerStep.push(process.resourceUsage().minorPageFault - faultsBefore);
    rssAfterStepMB.push(Math.round(process.memoryUsage().rss / 2 ** 20));
    if (i === 0) baseline = tf.memory().numTensors;
  }
  const backend = tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } };
  const graphs = stepGraphsStatus();
  console.log(
    JSON.stringify({
      variant,
      model: modelName,
      optimizer: optimizerName,
      batch,
      threads: variant === 'cpu+native' ? threads : undefined,
      msPerStep: times.map((t) => Math.round(t)),
      peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
      rssAfterStepMB,
      minorFaultsPerStep,
      ...residentMappings(),
      peakTensorMB: variant === 'wasm' ? undefined : Math.round(peakTensorBytes / 2 ** 20),
      tensorsAfterFirstStep: baseline,
      tensorsAtEnd: tf.memory().numTensors,
      wasmHeapMB: backend.wasm ? Math.round(backend.wasm.HEAPU8.length / 2 ** 20) : undefined,
      // Replayed steps, and step graphs opened again with ONNX Runtime's arena (arena.ts).
      stepGraphs: graphs.enabled
        ? { replays: graphs.replays, arenaReopened: graphs.arenaReopened }
        : undefined,
    }),
  );
}

/** Resident MB of glibc's main heap and of the largest other anonymous mapping (Linux only). */
function residentMappings(): { mallocHeapMB?: number; largestAnonymousMB?: number } {
  let smaps: string;
  try {
    smaps = readFileSync('/proc/self/smaps', 'utf8');
  } catch {
    return {};
  }
  let mallocHeap = 0;
  let largestAnonymous = 0;
  let name = '';
  for (const line of smaps.split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header != null) name = header[1]!;
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss == null) continue;
    const kb = Number(rss[1]);
    if (name === '[heap]') mallocHeap += kb;
    else if (name === '') largestAnonymous = Math.max(largestAnonymous, kb);
  }
  return {
    mallocHeapMB: Math.round(mallocHeap / 1024),
    largestAnonymousMB: Math.round(largestAnonymous / 1024),
  };
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (process.env.STACK ? e.stack : e.message) : e);
  process.exit(1);
});
