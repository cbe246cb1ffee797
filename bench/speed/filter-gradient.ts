/**
 * Conv2DBackpropFilter's step-graph translations (src/native/step-graph/translate-conv.ts)
 * alone, on the small CNN's and ResNet-20's shapes: each kernel call recorded once, built into
 * a one-call graph by each variant (ADAHESSIAN_FILTER_GRAD: 'fused', the native per-tap graph
 * as ONNX Runtime fuses it; 'taps', dy transposed once by NCHWc reorders; 'all', the default,
 * with one input channel as one patch-matrix product), run alternately; process CPU time,
 * median of `--runs`, and each variant's largest difference from the first (relative to its
 * largest value).
 *
 *   npx tsx bench/speed/filter-gradient.ts --runs 20
 */
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/index.js';
import { record } from '../../src/native/step-graph/capture.js';
import { buildStepGraph } from '../../src/native/step-graph/build.js';
import { openBuiltGraph } from '../../test/native/step-graph/helpers.js';
import { arg } from './args.js';

await useBackend('cpu');
tf.env().set('IS_TEST', false);
const runs = Number(arg('runs', '20'));
const variants = ['fused', 'taps', 'all'];

// x, filter, stride: the CNN's two convs (batch 128), ResNet-20's (batch 64).
const cases: [number[], number[], number][] = [
  [[128, 28, 28, 1], [3, 3, 1, 16], 1],
  [[128, 14, 14, 16], [3, 3, 16, 32], 1],
  [[64, 28, 28, 1], [3, 3, 1, 16], 1],
  [[64, 28, 28, 16], [3, 3, 16, 16], 1],
  [[64, 28, 28, 16], [3, 3, 16, 32], 2],
  [[64, 14, 14, 32], [3, 3, 32, 32], 1],
  [[64, 7, 7, 64], [3, 3, 64, 64], 1],
];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const saved = process.env['ADAHESSIAN_FILTER_GRAD'];

for (const [xShape, filterShape, strides] of cases) {
  const x = tf.randomNormal(xShape, 0, 1, 'float32', 1);
  const outShape = [
    xShape[0]!,
    Math.ceil(xShape[1]! / strides),
    Math.ceil(xShape[2]! / strides),
    filterShape[3]!,
  ];
  const dy = tf.randomNormal(outShape, 0, 1, 'float32', 2);
  const attrs = { strides, pad: 'same', dataFormat: 'NHWC', dilations: 1, filterShape };
  const { result, recording, refOf } = record(
    () =>
      tf
        .engine()
        .runKernel('Conv2DBackpropFilter', { x, dy }, attrs as tf.NamedAttrMap) as tf.Tensor,
  );
  const graphs = variants.map((v) => {
    process.env['ADAHESSIAN_FILTER_GRAD'] = v;
    const built = buildStepGraph(recording, [{ ref: refOf(result)!, shape: filterShape }]);
    return openBuiltGraph(built, recording);
  });
  if (saved === undefined) delete process.env['ADAHESSIAN_FILTER_GRAD'];
  else process.env['ADAHESSIAN_FILTER_GRAD'] = saved;
  const cpu = variants.map((): number[] => []);
  for (let r = 0; r < runs + 2; r++) {
    graphs.forEach((g, k) => {
      const c = process.cpuUsage();
      g.run();
      const used = process.cpuUsage(c);
      if (r >= 2) cpu[k]!.push((used.user + used.system) / 1000); // the first two allocate
    });
  }
  const first = graphs[0]!.run()[0]!.slice();
  const scale = first.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  // Relative to the largest value: the sums' order differs between variants.
  const diffs = graphs.map((g) => {
    const out = g.run()[0]!;
    return out.reduce((m, v, i) => Math.max(m, Math.abs(v - first[i]!)), 0) / scale;
  });
  const base = median(cpu[0]!);
  console.log(
    `x [${xShape}] filter [${filterShape}] stride ${strides}: ` +
      variants
        .map(
          (v, k) =>
            `${v} ${median(cpu[k]!).toFixed(2)} ms (${(median(cpu[k]!) / base).toFixed(3)}, diff ${diffs[k]!.toExponential(1)})`,
        )
        .join(', '),
  );
  graphs.forEach((g) => g.dispose());
  tf.dispose([x, dy, result]);
}
