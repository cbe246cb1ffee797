/**
 * ONNX Runtime's raw binding for the benchmarks that time hand-built graphs against the step
 * graphs' own (layer-norm-grad.ts, layer-norm-hvp.ts, gelu-hvp.ts, matmul-forms.ts,
 * reduce-threads.ts, filter-grad-threads.ts): a session opened with the options step-graph.ts
 * gives a step's session, so that what they time is what a replayed step runs.
 */
import { encodeOnnxModel, type OnnxGraph } from '../../src/native/onnx-model.js';
import { loadOnnxRuntime } from '../../src/native/onnx-runtime.js';

const loaded = loadOnnxRuntime();
if (loaded == null) throw new Error('onnxruntime-node is not available');
const runtime = loaded;
export const Tensor = runtime.Tensor as unknown as new (
  t: string,
  d: unknown,
  s: number[],
) => object;

export type Session = {
  loadModel(b: ArrayBuffer, o: number, l: number, options: object): void;
  run(feeds: object, fetches: object, options: object): void;
};

/** `graph` compiled as step-graph.ts compiles a step, on `threads` intra-op threads. */
export function openSession(graph: OnnxGraph, threads = 1): Session {
  const bytes = encodeOnnxModel(graph);
  const s = new runtime.binding.binding.InferenceSession() as unknown as Session;
  s.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    enableCpuMemArena: true,
    enableMemPattern: false,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  return s;
}
