/**
 * What src/native/step-graph/pool-relu-masks.ts buys, on the part of a small CNN's AdaHessian
 * step graph it rewrites: z -> Relu -> 2x2 max pool, with relu's mask Step(z) applied to the
 * pool's gradients as the step applies it: the gradient's MaxPoolGrad(dy1) * mask (left as it
 * is), the sweep's MaxPoolGradTranspose(t * mask) and MaxPoolGrad(dy2) * mask. Recorded once,
 * built with ADAHESSIAN_POOL_MASKS=0, 1 and 2, run as one-call graphs on one ONNX Runtime thread,
 * alternately; process CPU time per run (medians), and whether the outputs are the same bits.
 *
 *   npx tsx bench/speed/pool-relu-masks.ts                         # the CNN's first pool, batch 64
 *   npx tsx bench/speed/pool-relu-masks.ts --shape 64,14,14,32 --rounds 101
 *   npx tsx bench/speed/pool-relu-masks.ts --levels 2,1,0 --rounds 201   # the other order
 */
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/index.js';
import { loadOnnxRuntime, onnxRuntimeUnavailableReason } from '../../src/native/onnx-runtime.js';
import { record } from '../../src/native/step-graph/capture.js';
import { buildStepGraph } from '../../src/native/step-graph/build.js';
import { MAX_POOL_GRAD_TRANSPOSE } from '../../src/kernels/max-pool-grad.js';
import { openBuiltGraph } from '../../test/native/step-graph/helpers.js';
import { arg } from './args.js';

tf.env().set('IS_TEST', false);
await useBackend('cpu');
if (loadOnnxRuntime() == null) throw new Error(onnxRuntimeUnavailableReason());

const shape = arg('shape', '64,28,28,16').split(',').map(Number) as [
  number,
  number,
  number,
  number,
];
const rounds = Number(arg('rounds', '61'));
const attrs = { filterSize: 2, strides: 2, pad: 'valid' } as tf.NamedAttrMap;
const z = tf.randomNormal(shape, 0, 1, 'float32', 1);
const pooledShape = [shape[0], shape[1] / 2, shape[2] / 2, shape[3]];
const [dy1, dy2] = [2, 3].map((seed) => tf.randomNormal(pooledShape, 0, 1, 'float32', seed));
const t = tf.randomNormal(shape, 0, 1, 'float32', 4);

const { result, recording, refOf } = record(() => {
  const x = tf.relu(z);
  const output = tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid');
  const mask = tf.step(z);
  const grad = (dy: tf.Tensor) =>
    tf.engine().runKernel('MaxPoolGrad', { dy, input: x, output }, attrs) as tf.Tensor;
  const transpose = tf
    .engine()
    .runKernel(MAX_POOL_GRAD_TRANSPOSE, { dxBar: tf.mul(t, mask), input: x, output }, attrs);
  return [tf.mul(grad(dy1!), mask), transpose as tf.Tensor, tf.mul(grad(dy2!), mask)];
});
const outputs = result.map((r) => ({ ref: refOf(r)!, shape: [...r.shape] }));

const levels = arg('levels', '0,1,2').split(',');
const graphs = levels.map((level) => {
  const saved = process.env['ADAHESSIAN_POOL_MASKS'];
  process.env['ADAHESSIAN_POOL_MASKS'] = level;
  try {
    const built = buildStepGraph(recording, outputs);
    return { built, graph: openBuiltGraph(built, recording) };
  } finally {
    if (saved === undefined) delete process.env['ADAHESSIAN_POOL_MASKS'];
    else process.env['ADAHESSIAN_POOL_MASKS'] = saved;
  }
});
const want = graphs[0]!.graph.run().map((o) => o.slice());
const times = levels.map(() => [] as number[]);
for (let r = 0; r < rounds; r++) {
  graphs.forEach(({ graph }, k) => {
    const c0 = process.cpuUsage();
    graph.run();
    const c = process.cpuUsage(c0);
    times[k]!.push((c.user + c.system) / 1000);
  });
}
const median = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)]!;
console.log(
  `relu, 2x2 max pool and three masked gradients on [${shape}], ${rounds} rounds, one thread`,
);
console.log(
  `ADAHESSIAN_POOL_MASKS | nodes | CPU ms (median) | / level ${levels[0]} | outputs differing from level ${levels[0]} (bits)`,
);
graphs.forEach(({ built, graph }, k) => {
  const got = graph.run();
  const differing = got.map((o, j) => {
    const a = new Uint32Array(o.buffer, o.byteOffset, o.length);
    const b = new Uint32Array(want[j]!.buffer, want[j]!.byteOffset, want[j]!.length);
    return a.filter((v, i) => v !== b[i]).length;
  });
  console.log(
    `${levels[k]} | ${built.nodeCount} | ${median(times[k]!).toFixed(3)} | ${(median(times[k]!) / median(times[0]!)).toFixed(3)} | ${differing.join(', ')}`,
  );
});
graphs.forEach(({ graph }) => graph.dispose());
tf.dispose([...result, z, dy1!, dy2!, t]);
