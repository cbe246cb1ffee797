/**
 * MaxPoolGrad and MaxPoolGradTranspose (the pair a small-CNN AdaHessian step runs per pooling:
 * the gradient and the Hessian-vector sweep's transpose) as step-graph nodes, by the two
 * translations of src/native/step-graph/translate-conv.ts (tiling windows: TF.js's winner scan
 * over window positions; general: MaxPool's argmax, ScatterElements, GatherElements), against
 * our JS kernels (src/kernels/max-pool-grad.ts, what op by op runs; each round on a fresh
 * input, so that the winners' scan is paid as in a step). One-call graphs, one ONNX Runtime
 * thread, process CPU time per pair (median of interleaved rounds), checked equal to the JS
 * kernels' values.
 *
 *   npx tsx bench/speed/max-pool-grad-graph.ts                      # the CNN's first pool
 *   npx tsx bench/speed/max-pool-grad-graph.ts --shape 128,14,14,32 --rounds 31
 */
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/index.js';
import { loadOnnxRuntime, onnxRuntimeUnavailableReason } from '../../src/native/onnx-runtime.js';
import { record } from '../../src/native/step-graph/capture.js';
import { buildStepGraph } from '../../src/native/step-graph/build.js';
import { TRANSLATIONS } from '../../src/native/step-graph/translate.js';
import { GENERAL_MAX_POOL_GRAD } from '../../src/native/step-graph/translate-conv.js';
import { MAX_POOL_GRAD_TRANSPOSE } from '../../src/kernels/max-pool-grad.js';
import { openBuiltGraph } from '../../test/native/step-graph/helpers.js';
import { arg } from './args.js';

tf.env().set('IS_TEST', false);
await useBackend('cpu');
if (loadOnnxRuntime() == null) throw new Error(onnxRuntimeUnavailableReason());

const shape = arg('shape', '128,28,28,16').split(',').map(Number);
const rounds = Number(arg('rounds', '21'));
const attrs = { filterSize: 2, strides: 2, pad: 'valid' } as tf.NamedAttrMap;
const x = tf.tidy(() => tf.relu(tf.randomNormal(shape, 0, 1, 'float32', 1)));
const pooled = tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid');
const dy = tf.randomNormal(pooled.shape, 0, 1, 'float32', 2);
const dxBar = tf.randomNormal(shape, 0, 1, 'float32', 3);

/** Both kernels on `input` with TF.js's kernels (ours, op by op). */
const pair = (input: tf.Tensor) => [
  tf.engine().runKernel('MaxPoolGrad', { dy, input, output: pooled }, attrs) as tf.Tensor,
  tf
    .engine()
    .runKernel(MAX_POOL_GRAD_TRANSPOSE, { dxBar, input, output: pooled }, attrs) as tf.Tensor,
];
const want = pair(x).map((t) => t.dataSync().slice());

/** The pair as one graph with the table's rules, `rules` swapped in; a runner. */
function graphRunner(rules: Record<string, unknown>): () => void {
  const table = TRANSLATIONS as Record<string, unknown>;
  const saved = { ...table };
  Object.assign(table, rules);
  try {
    const { result, recording, refOf } = record(() => pair(x));
    const outputs = result.map((t) => ({ ref: refOf(t)!, shape: [...t.shape] }));
    const graph = openBuiltGraph(buildStepGraph(recording, outputs), recording);
    tf.dispose(result);
    graph.run().forEach((o, k) => {
      if (!o.every((v, i) => v === want[k]![i])) throw new Error(`output ${k} differs`);
    });
    return () => void graph.run();
  } finally {
    Object.assign(table, saved);
  }
}

const variants: Record<string, { prepare?: () => tf.Tensor; run: (input?: tf.Tensor) => void }> = {
  'graph, tiling windows': { run: graphRunner({}) },
  'graph, general (argmax)': { run: graphRunner(GENERAL_MAX_POOL_GRAD) },
  'JS kernels (op by op)': {
    // A fresh input each round: the winners are cached per input, as within one step.
    prepare: () => tf.tensor(x.dataSync(), shape),
    run: (input) => tf.dispose(pair(input!)),
  },
};
const times = new Map<string, number[]>();
for (let r = 0; r < rounds; r++) {
  for (const [name, v] of Object.entries(variants)) {
    const input = v.prepare?.();
    const c0 = process.cpuUsage();
    v.run(input);
    const c = process.cpuUsage(c0);
    times.set(name, [...(times.get(name) ?? []), (c.user + c.system) / 1000]);
    input?.dispose();
  }
}
const median = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)]!;
const base = median(times.get('JS kernels (op by op)')!);
console.log(`MaxPoolGrad + MaxPoolGradTranspose, 2x2 stride 2 on [${shape}], ${rounds} rounds`);
console.log('variant | CPU ms (median) | / JS kernels');
for (const [name, t] of times) {
  console.log(`${name} | ${median(t).toFixed(2)} | ${(median(t) / base).toFixed(2)}`);
}
