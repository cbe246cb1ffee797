/**
 * Whether the char transformer's AdaHessian step graph still rounds as lr-text's pinned results
 * were made (docs/results/lr-text.json: `--step-graphs adahessian`, one thread), in seconds
 * rather than `run-all.ts --verify lr-text`'s ~12 minutes: the step at lr-text's shapes (context
 * 32, batch 16, d 64; vocab 96 here) runs three times through CompiledSteps as training runs it
 * (capture, confirmation, replay), and the SHA-256 of its outputs (loss, gradients, Hutchinson
 * diagonal) is printed with the graph's node count; the same for the first-order step (which
 * AdamW does not take on lr-text: op by op there). Run it before and after a change to the
 * step graphs (e.g. in a `git worktree` of the old commit) and compare the hashes: equal hashes
 * mean the same bits; different ones mean lr-text must be regenerated.
 *
 *   npx tsx bench/speed/lr-text-graph-hash.ts
 *   npx tsx bench/speed/lr-text-graph-hash.ts --context 64 --batch 64   # the benchmark's shapes
 *   npx tsx bench/speed/lr-text-graph-hash.ts --stock-layers            # tf.layers' layer norm, GELU
 *
 * Since the tenth session the model's layer norms and GELUs have compact gradients
 * (src/models/compact-gradient-layers.ts): AdaHessian fe13db955dbcecfa, 2,089 nodes; the
 * first-order graph is bit for bit the stock layers' with layer-norm-grad.ts's and gelu-grad.ts's
 * rewrites, 0fc6ad93b6b58731 (698 nodes). With --stock-layers the AdaHessian graph of before,
 * 84bf7d51ef2acf6e (3,287 nodes; first-order 0fc6ad93b6b58731, 765).
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { buildCharTransformer, softmaxCrossEntropy, useBackend } from '../../src/index.js';
import { enableNativeKernels } from '../../src/native/index.js';
import { CompiledSteps } from '../../src/native/step-graph/hutchinson-step.js';
import { drawProbes } from '../../src/optimizers/hutchinson.js';
import { RademacherGenerator } from '../../src/optimizers/rademacher.js';
import { arg } from './args.js';

tf.env().set('IS_TEST', false);
const context = Number(arg('context', '32'));
const batch = Number(arg('batch', '16'));
const vocab = 96;

await useBackend('cpu');
const native = enableNativeKernels({ threads: 1, stepGraphs: false });
if (!native.enabled) throw new Error(`native kernels unavailable: ${native.reason}`);
const model = buildCharTransformer({
  vocabSize: vocab,
  contextLength: context,
  seed: 1,
  compactGradients: !process.argv.includes('--stock-layers'),
});
const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
const ids = tf.randomUniform([batch, context], 0, vocab, 'int32', 1);
const y = tf.tidy(() => tf.oneHot(tf.randomUniform([batch, context], 0, vocab, 'int32', 2), vocab));
const probes = drawProbes(new RademacherGenerator(1), vars, 1);
const loss = () => softmaxCrossEntropy(y, model.apply(ids) as tf.Tensor) as tf.Scalar;
const steps = new CompiledSteps(vars, { threads: 1 });

const hashOf = (tensors: readonly tf.Tensor[]) => {
  const h = createHash('sha256');
  for (const t of tensors) h.update(new Uint8Array((t.dataSync() as Float32Array).slice().buffer));
  return h.digest('hex').slice(0, 16);
};
console.log(`char transformer, context ${context}, batch ${batch}, vocab ${vocab}, 1 thread:`);
for (let k = 0; k < 3; k++) {
  const s = steps.hutchinsonStep(loss, probes);
  const all = [s.loss, ...s.grads, ...s.diagonal];
  console.log(
    `  AdaHessian step ${k + 1}: ${s.replayed ? 'replayed' : 'captured'}, SHA-256 ${hashOf(all)}`,
  );
  tf.dispose(all);
}
console.log(`  AdaHessian graph: ${steps.hutchinson.status.lastGraphNodes} nodes`);
for (let k = 0; k < 3; k++) {
  const s = steps.gradientStep(loss);
  const all = [s.loss, ...s.grads.filter((g): g is tf.Tensor => g != null)];
  console.log(
    `  first-order step ${k + 1}: ${s.replayed ? 'replayed' : 'captured'}, SHA-256 ${hashOf(all)}`,
  );
  tf.dispose(all);
}
console.log(`  first-order graph: ${steps.gradient.status.lastGraphNodes} nodes`);
steps.dispose();
tf.dispose([ids, y, ...probes.flat()]);
