/**
 * Seconds per Hessian-vector product of the analysis (HessianAnalyzer's operator, one vector
 * per pass as Lanczos sends them) on each backend, in one run: wasm, cpu, and cpu with the
 * native kernels of src/native. Rounds are interleaved (every variant once per round) and the
 * medians reported with their ratio to the first variant, because the machine is shared.
 *
 *   npx tsx bench/analysis-product.ts                                  # small CNN, batch 512
 *   npx tsx bench/analysis-product.ts --model resnet20 --batch 128 --micro-batch 32
 *   npx tsx bench/analysis-product.ts --variants wasm,cpu+native --rounds 3 --products 2
 */
import * as tf from '@tensorflow/tfjs';
import {
  buildResNet20,
  buildSmallCnn,
  datasetToTensors,
  HessianAnalyzer,
  softmaxCrossEntropy,
  useBackend,
} from '../src/index.js';
import { loadFashionMnistSlice } from '../src/data/node/index.js';
import { disableNativeKernels, enableNativeKernels } from '../src/native/index.js';

tf.env().set('IS_TEST', false); // quiet TF.js's "install tfjs-node" banner

const VARIANTS = ['wasm', 'cpu', 'cpu+native'] as const;
type Variant = (typeof VARIANTS)[number];

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const modelName = arg('model') ?? 'small-cnn';
const batch = Number(arg('batch') ?? 512);
const microBatch = arg('micro-batch') === undefined ? 'auto' : Number(arg('micro-batch'));
const rounds = Number(arg('rounds') ?? 3);
const perRound = Number(arg('products') ?? 2);
const variants = (arg('variants')?.split(',') ?? ['wasm', 'cpu+native']) as Variant[];
for (const v of variants) {
  if (!VARIANTS.includes(v)) throw new Error(`--variants: unknown '${v}'; expected ${VARIANTS}`);
}
if (!['small-cnn', 'resnet20'].includes(modelName)) {
  throw new Error(`--model: expected small-cnn or resnet20, got '${modelName}'`);
}

async function use(variant: Variant): Promise<void> {
  disableNativeKernels();
  await useBackend(variant === 'wasm' ? 'wasm' : 'cpu');
  if (variant === 'cpu+native') {
    const status = enableNativeKernels({ threads: 1 });
    if (!status.enabled) throw new Error(`native kernels unavailable: ${status.reason}`);
  }
}

/** Seconds per product over `count` products (after the caller's warm-up). */
async function timeProducts(variant: Variant, count: number, warmup: boolean): Promise<number> {
  await use(variant);
  const model =
    modelName === 'resnet20'
      ? buildResNet20({ inputShape: [28, 28, 1], seed: 1 })
      : buildSmallCnn({ seed: 1 });
  const { x, y } = datasetToTensors(loadFashionMnistSlice('train', { limit: batch }));
  try {
    const analyzer = new HessianAnalyzer({
      model,
      loss: softmaxCrossEntropy,
      data: { x, y },
      microBatchSize: microBatch,
    });
    const v = tf.randomNormal([1, analyzer.size], 0, 1, 'float32', 3) as tf.Tensor2D;
    if (warmup) tf.dispose(await analyzer.operator.matmat(v));
    const started = performance.now();
    for (let i = 0; i < count; i++) tf.dispose(await analyzer.operator.matmat(v));
    const seconds = (performance.now() - started) / 1000 / count;
    v.dispose();
    return seconds;
  } finally {
    tf.dispose([x, y]);
    model.dispose();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const times = new Map<Variant, number[]>(variants.map((v) => [v, []]));
console.log(
  `${modelName}, batch ${batch}, micro-batch ${microBatch}; ${rounds} rounds of ${perRound} products per variant (after one warm-up product each round)`,
);
for (let round = 0; round < rounds; round++) {
  for (const variant of variants) {
    const s = await timeProducts(variant, perRound, true);
    times.get(variant)!.push(s);
    console.log(`  round ${round + 1} ${variant}: ${s.toFixed(2)} s/product`);
  }
}
const first = median(times.get(variants[0]!)!);
console.log('\nvariant      s/product (median)   ratio to ' + variants[0]);
for (const variant of variants) {
  const m = median(times.get(variant)!);
  console.log(
    `${variant.padEnd(12)} ${m.toFixed(2).padStart(8)}             ${(m / first).toFixed(2)}`,
  );
}
disableNativeKernels();
