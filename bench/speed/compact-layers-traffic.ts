/**
 * What the compact layer norms and GELUs (src/models/compact-gradient-layers.ts) take out of
 * the char transformer's AdaHessian step graph, counted rather than timed (the shared machine's
 * timings move by 10 % and more under load): the step (loss, gradients, Hutchinson diagonal) is
 * recorded and built as step graphs build it, for the stock layers and the compact ones, and for
 * each graph this prints its nodes, the recorded calls it keeps, the elements the element-wise
 * and reduction calls read and write (aliases, i.e. reshapes and identities, left out; 4 bytes
 * each), how many of those calls make a tensor of the residual stream's size or more, and the
 * products' FLOPs (the same in both).
 *
 *   npx tsx bench/speed/compact-layers-traffic.ts                          # context 64, batch 64
 *   npx tsx bench/speed/compact-layers-traffic.ts --context 32 --batch 16  # lr-text's shapes
 */
import * as tf from '@tensorflow/tfjs';
import { buildCharTransformer, softmaxCrossEntropy, useBackend } from '../../src/index.js';
import { enableNativeKernels } from '../../src/native/index.js';
import { buildStepGraph } from '../../src/native/step-graph/build.js';
import { recordHutchinsonStep } from '../../test/native/step-graph/helpers.js';
import { arg } from './args.js';

tf.env().set('IS_TEST', false);
const context = Number(arg('context', '64'));
const batch = Number(arg('batch', '64'));
const vocab = 96;
const dModel = 64;

await useBackend('cpu');
const native = enableNativeKernels({ threads: 1, stepGraphs: false });
if (!native.enabled) throw new Error(`native kernels unavailable: ${native.reason}`);
const ids = tf.randomUniform([batch, context], 0, vocab, 'int32', 1);
const y = tf.tidy(() => tf.oneHot(tf.randomUniform([batch, context], 0, vocab, 'int32', 2), vocab));
const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const residual = batch * context * dModel;

console.log(`char transformer AdaHessian step graph, context ${context}, batch ${batch}:`);
for (const compactGradients of [false, true]) {
  const model = buildCharTransformer({
    vocabSize: vocab,
    contextLength: context,
    dModel,
    seed: 1,
    compactGradients,
  });
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const { recording, outputs, probes } = recordHutchinsonStep(
    () => softmaxCrossEntropy(y, model.apply(ids, { training: true }) as tf.Tensor),
    vars,
  );
  const built = buildStepGraph(recording, outputs);
  const kept = new Set(built.nodeCalls.filter((c) => c >= 0));
  let elements = 0;
  let flops = 0;
  let large = 0;
  for (const c of kept) {
    const call = recording.calls[c]!;
    if (call.aliases.some((a) => a >= 0)) continue;
    const outShapes = call.outputs.map((v) => recording.values[v]!.shape);
    if (call.kernelName === 'BatchMatMul' || call.kernelName === '_FusedMatMul') {
      const a = call.inputs[0]!.shape;
      const inner = call.attrs['transposeA'] ? a.at(-2)! : a.at(-1)!;
      flops += 2 * size(outShapes[0]!) * inner;
      continue;
    }
    elements += call.inputs.reduce((n, i) => n + size(i.shape), 0);
    elements += outShapes.reduce((n, s) => n + size(s), 0);
    if (outShapes.some((s) => size(s) >= residual)) large++;
  }
  console.log(
    `  ${compactGradients ? 'compact' : 'stock  '} ${built.nodeCount} nodes, ${kept.size} calls: ` +
      `element-wise and reductions ${((4 * elements) / 2 ** 20).toFixed(0)} MiB read and ` +
      `written, ${large} calls of >= [${batch}, ${context}, ${dModel}]; products ` +
      `${(flops / 1e9).toFixed(2)} GFLOP`,
  );
  tf.dispose(probes.flat());
  model.dispose();
}
tf.dispose([ids, y]);
