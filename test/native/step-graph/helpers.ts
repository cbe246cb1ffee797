/**
 * What the step-graph tests (and some benchmarks) share: recording a loss and its gradients, or
 * AdaHessian's whole step, running a built graph in ONNX Runtime on its recording's own inputs
 * (still alive in TF.js), and comparing groups of tensors to float32 rounding.
 */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
// The package's entry, not its modules: importing it registers the kernels (MaxPoolGrad's
// transpose and the others) that the tests' recordings run.
import { buildSmallCnn, softmaxCrossEntropy } from '../../../src/index.js';
import { encodeOnnxModel } from '../../../src/native/onnx-model.js';
import { loadOnnxRuntime } from '../../../src/native/onnx-runtime.js';
import { record, type Recording } from '../../../src/native/step-graph/capture.js';
import type { BuiltGraph, GraphOutput } from '../../../src/native/step-graph/build.js';
import { drawProbes, hutchinsonDiagonal } from '../../../src/optimizers/hutchinson.js';
import { RademacherGenerator } from '../../../src/optimizers/rademacher.js';

type OrtSession = {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  run(feeds: object, fetches: object, options: object): void;
  dispose(): void;
};

/** The graph's float32 outputs, `runs` times over (one array per output per run). */
export function runBuiltGraph(
  built: BuiltGraph,
  recording: Recording,
  options: { threads?: number; runs?: number } = {},
): Float32Array[][] {
  const graph = openBuiltGraph(built, recording, options);
  const runs: Float32Array[][] = [];
  try {
    for (let r = 0; r < (options.runs ?? 1); r++) runs.push(graph.run().map((o) => o.slice()));
  } finally {
    graph.dispose();
  }
  return runs;
}

/**
 * A session of the built graph, fed its recording's inputs; run() writes the outputs into the
 * same arrays each time (benchmarks time it: bench/speed/max-pool-grad-graph.ts).
 */
export function openBuiltGraph(
  built: BuiltGraph,
  recording: Recording,
  options: { threads?: number } = {},
): { run(): Float32Array[]; dispose(): void } {
  const runtime = loadOnnxRuntime()!;
  const Tensor = runtime.Tensor as unknown as new (t: string, d: unknown, s: number[]) => object;
  const bytes = encodeOnnxModel(built.graph);
  const session = new runtime.binding.binding.InferenceSession() as unknown as OrtSession;
  session.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
    intraOpNumThreads: options.threads ?? 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
  });
  const backend = tf.backend() as unknown as { readSync(id: object): unknown };
  const feeds: Record<string, object> = {};
  for (const e of built.inputExternals) {
    const ext = recording.externals[e]!;
    feeds[`e${e}`] = new Tensor(ext.dtype, backend.readSync(ext.dataId!), ext.shape);
  }
  const results = built.graph.outputs.map(
    (o) => new Float32Array(o.shape.reduce((p, d) => p * d, 1)),
  );
  const fetches: Record<string, object> = {};
  built.graph.outputs.forEach(
    (o, k) => (fetches[o.name] = new Tensor('float32', results[k], [...o.shape])),
  );
  return {
    run: () => {
      session.run(feeds, fetches, {});
      return results;
    },
    dispose: () => session.dispose(),
  };
}

/** max |a - b| over a group of tensors, against the group's largest |b|. */
export function assertClose(got: tf.Tensor[], want: tf.Tensor[], rel: number, what: string): void {
  let scale = 0;
  let err = 0;
  got.forEach((g, i) => {
    const a = g.dataSync();
    const b = want[i]!.dataSync();
    assert.deepEqual(g.shape, want[i]!.shape, `${what} ${i}: shape`);
    for (let k = 0; k < b.length; k++) {
      scale = Math.max(scale, Math.abs(b[k]!));
      err = Math.max(err, Math.abs(a[k]! - b[k]!));
    }
  });
  assert.ok(err <= rel * scale, `${what}: max difference ${err} against a scale of ${scale}`);
}

/**
 * Loss and gradients of `f` recorded, as a first-order step records them; the variables are
 * graph inputs (not baked in).
 */
export function recordGradients(f: () => tf.Scalar, vars: tf.Variable[]) {
  const { result, recording, refOf } = record(() => {
    const { value, grads } = tf.variableGrads(f, vars);
    return [value, ...vars.map((v) => grads[v.name]!)];
  });
  const outputs: GraphOutput[] = result.map((t) => ({ ref: refOf(t)!, shape: [...t.shape] }));
  asGraphInputs(recording, vars);
  return { result, recording, outputs };
}

/**
 * AdaHessian's step recorded as its step graphs record it: loss, gradients and the Hutchinson
 * diagonal z * Hz for one Rademacher probe drawn from `probeSeed`; the variables and the probe
 * are graph inputs. The caller disposes `result` and `probes`.
 */
export function recordHutchinsonStep(loss: () => tf.Scalar, vars: tf.Variable[], probeSeed = 1) {
  const probes = drawProbes(new RademacherGenerator(probeSeed), vars, 1);
  const { result, recording, refOf } = record(() => {
    const est = hutchinsonDiagonal(loss, vars, { probes, checkFinite: false });
    return [est.loss, ...est.grads, ...est.diagonal];
  });
  const outputs: GraphOutput[] = result.map((t) => ({ ref: refOf(t)!, shape: [...t.shape] }));
  asGraphInputs(recording, [...vars, ...probes.flat()]);
  return { result, recording, outputs, probes };
}

/**
 * The small CNN's AdaHessian step (buildSmallCnn seed 3, `batch` random images and labels,
 * probe seed 6) recorded by recordHutchinsonStep: what the step-graph rewrite tests build their
 * graphs from. dispose() frees what this made (model, data, probes, recorded results).
 */
export function recordSmallCnnStep(batch = 8) {
  const model = buildSmallCnn({ seed: 3 });
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const x = tf.randomUniform([batch, 28, 28, 1], 0, 1, 'float32', 4);
  const y = tf.tidy(() => tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32', 5), 10));
  const loss = () => softmaxCrossEntropy(y, model.apply(x) as tf.Tensor);
  const step = recordHutchinsonStep(loss, vars, 6);
  const dispose = () => {
    tf.dispose([...step.result, x, y, ...step.probes.flat()]);
    model.dispose();
  };
  return { ...step, vars, loss, dispose };
}

/**
 * `build()` with these environment variables set (undefined: unset), each restored after:
 * the rewrites read their ADAHESSIAN_* switches when a graph is built. Synchronous `build` only
 * (a promise would settle after the restore).
 */
export function withEnv<T>(vars: Record<string, string | undefined>, build: () => T): T {
  const saved = Object.keys(vars).map((name) => [name, process.env[name]] as const);
  const set = (entries: (readonly [string, string | undefined])[]) => {
    for (const [name, value] of entries) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
  set(Object.entries(vars));
  try {
    return build();
  } finally {
    set(saved);
  }
}

/**
 * One output's largest |op-by-op value| (its scale) and its largest differences from another
 * build's values (`plain`) and from op by op.
 */
export function largestDifferences(
  got: ArrayLike<number>,
  plain: ArrayLike<number>,
  opByOp: ArrayLike<number>,
): { scale: number; fromPlain: number; fromOps: number } {
  assert.ok(plain.length === got.length && opByOp.length === got.length, 'output sizes differ');
  let scale = 0;
  let fromPlain = 0;
  let fromOps = 0;
  for (let i = 0; i < got.length; i++) {
    scale = Math.max(scale, Math.abs(opByOp[i]!));
    fromPlain = Math.max(fromPlain, Math.abs(got[i]! - plain[i]!));
    fromOps = Math.max(fromOps, Math.abs(got[i]! - opByOp[i]!));
  }
  return { scale, fromPlain, fromOps };
}

/**
 * As step-graph.ts: these tensors (variables, probes) become graph inputs however small, their
 * recorded values dropped so that the build does not bake them in as constants.
 */
export function asGraphInputs(recording: Recording, tensors: readonly tf.Tensor[]): void {
  const ids = new Set(tensors.map((t) => t.dataId as object));
  for (const ext of recording.externals) if (ids.has(ext.dataId!)) delete ext.values;
}
