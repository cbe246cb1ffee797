/**
 * What `adahessian analyze` pays per Hessian-vector product for a saved model, loaded as it
 * loads it now (src/cli/model-io.ts: the compact-gradient layers for the stock class names)
 * against the stock classes (loadModel's stockLayers, what tf.loadLayersModel builds), in one
 * process, alternating product by product on the same batch and vector, on cpu with the native
 * kernels (analyze's default; its products run op by op). Prints the median process CPU time
 * and wall time of a product and compact / stock, and the products' largest relative
 * difference.
 *
 *   npx tsx bench/speed/loaded-model-hvp.ts --model /tmp/ct [--batch 32] [--rounds 8]
 *   npx tsx bench/speed/loaded-model-hvp.ts --model /tmp/ct --stock-first
 *
 * --model is a `train --out` directory of a model with ints for input (the char transformer);
 * its batch is random ids and labels. Which one is loaded and run first can matter (see
 * compact-layers.ts's header): run both orders.
 */
import * as tf from '@tensorflow/tfjs';
import { gradAndHvp, softmaxCrossEntropy, useBackend } from '../../src/index.js';
import { enableNativeKernels } from '../../src/native/index.js';
import { loadModel } from '../../src/cli/model-io.js';
import { arg } from './args.js';

tf.env().set('IS_TEST', false);
const path = arg('model', '');
if (path === '') throw new Error('--model <train --out directory> is required.');
const batch = Number(arg('batch', '32'));
const rounds = Number(arg('rounds', '8'));
const stockFirst = process.argv.includes('--stock-first');

await useBackend('cpu');
const native = enableNativeKernels({ threads: 1, stepGraphs: false });
if (!native.enabled) throw new Error(`native kernels unavailable: ${native.reason}`);
const kinds = stockFirst ? (['stock', 'compact'] as const) : (['compact', 'stock'] as const);
const models = new Map<string, tf.LayersModel>();
for (const kind of kinds) {
  models.set(kind, (await loadModel(path, { stockLayers: kind === 'stock' })).model);
}
const first = models.get('compact')!;
const [context, vocab] = [first.inputs[0]!.shape[1]!, first.outputs[0]!.shape[2]!];
const ids = tf.randomUniform([batch, context], 0, vocab, 'int32', 1);
const labels = tf.tidy(() =>
  tf.oneHot(tf.randomUniform([batch, context], 0, vocab, 'int32', 2), vocab).toFloat(),
);
const vector = first.trainableWeights.map((w, i) =>
  tf.randomNormal(w.shape as number[], 0, 1, 'float32', 10 + i),
);
const product = (model: tf.LayersModel) =>
  gradAndHvp(
    () => softmaxCrossEntropy(labels, model.apply(ids, { training: false }) as tf.Tensor),
    model.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val),
    vector,
  );

const times = new Map<string, { cpu: number[]; wall: number[] }>();
const last = new Map<string, Float32Array[]>();
for (let r = 0; r < rounds + 1; r++) {
  for (const kind of kinds) {
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    const out = product(models.get(kind)!);
    const hvp = out.hvp.map((t) => t.dataSync() as Float32Array); // waits for the values
    const cpu = process.cpuUsage(cpu0);
    const wall = performance.now() - wall0;
    tf.dispose([out.loss, ...out.grads, ...out.hvp]);
    last.set(kind, hvp);
    if (r === 0) continue; // the first product of each: kernels' and sessions' warm-up
    const t = times.get(kind) ?? { cpu: [], wall: [] };
    t.cpu.push((cpu.user + cpu.system) / 1000);
    t.wall.push(wall);
    times.set(kind, t);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
// Per weight, max |compact - stock| / max |stock|; the attention keys' bias is left out: its
// gradient is zero (softmax ignores a constant per row), its H v rounding alone.
let worst = 0;
last.get('compact')!.forEach((a, i) => {
  if (first.trainableWeights[i]!.name.includes('key_bias')) return;
  const b = last.get('stock')![i]!;
  let diff = 0;
  let scale = 1e-30;
  for (let k = 0; k < a.length; k++) {
    diff = Math.max(diff, Math.abs(a[k]! - b[k]!));
    scale = Math.max(scale, Math.abs(b[k]!));
  }
  worst = Math.max(worst, diff / scale);
});
console.log(`${path}: batch ${batch}, ${rounds} products each, order ${kinds.join(' then ')}`);
for (const kind of kinds) {
  const t = times.get(kind)!;
  console.log(
    `  ${kind.padEnd(7)} CPU ${median(t.cpu).toFixed(0)} ms, wall ${median(t.wall).toFixed(0)} ms per product`,
  );
}
const [c, s] = [times.get('compact')!, times.get('stock')!];
console.log(
  `  compact / stock: CPU ${(median(c.cpu) / median(s.cpu)).toFixed(2)}, wall ` +
    `${(median(c.wall) / median(s.wall)).toFixed(2)}; H v largest relative difference ${worst.toExponential(1)}`,
);
tf.dispose([ids, labels, ...vector]);
for (const m of models.values()) m.dispose();
