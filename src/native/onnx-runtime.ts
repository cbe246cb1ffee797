/**
 * The optional ONNX Runtime (onnxruntime-node) binding, loaded lazily, and a cache of one
 * inference session per small graph. We call the binding's synchronous `run` directly,
 * because TF.js kernel functions must return synchronously; the package's public API only
 * offers an async run.
 *
 * Inputs are handed to ONNX Runtime as views of the caller's Float32Arrays (no copy) and the
 * output is written into a Float32Array we allocate, which the TF.js cpu backend then keeps.
 */
import { createRequire } from 'node:module';
import { encodeOnnxModel, type OnnxGraph } from './onnx-model.js';
import { ortSpinning } from './threads.js';

/** The typed arrays our graphs take and give. */
export type GraphArray = Float32Array | Int32Array;

interface OrtTensor {
  readonly data: GraphArray;
}
type OrtTensorConstructor = new (
  type: 'float32' | 'int32',
  data: GraphArray,
  dims: number[],
) => OrtTensor;

interface OrtSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  run(
    feeds: Record<string, OrtTensor>,
    fetches: Record<string, OrtTensor>,
    options: object,
  ): Record<string, OrtTensor>;
  dispose(): void;
}

interface OrtBinding {
  binding: { InferenceSession: new () => OrtSession };
  initOrt: () => void;
}

interface LoadedRuntime {
  binding: OrtBinding;
  Tensor: OrtTensorConstructor;
  version: string;
}

let loaded: LoadedRuntime | null | undefined;
let loadError = '';
let packageName = 'onnxruntime-node';

/**
 * Forgets the loaded binding and loads `name` instead next time: lets a test prove the
 * fallback when the package is missing. Not part of the public API.
 */
export function reloadOnnxRuntimeForTesting(name = 'onnxruntime-node'): void {
  loaded = undefined;
  loadError = '';
  packageName = name;
}

/** The binding, or null when onnxruntime-node cannot be loaded (see `onnxRuntimeUnavailableReason`). */
export function loadOnnxRuntime(): LoadedRuntime | null {
  if (loaded !== undefined) return loaded;
  try {
    const require = createRequire(import.meta.url);
    const binding = require(`${packageName}/dist/binding.js`) as OrtBinding;
    const common = require('onnxruntime-common') as { Tensor: OrtTensorConstructor };
    const pkg = require(`${packageName}/package.json`) as { version: string };
    binding.initOrt();
    loaded = { binding, Tensor: common.Tensor, version: pkg.version };
  } catch (e) {
    loadError = e instanceof Error ? e.message.split('\n')[0]! : String(e);
    if ((e as { code?: string }).code === 'MODULE_NOT_FOUND' && loadError.includes(packageName)) {
      loadError = `it is not installed. ${ONNX_RUNTIME_INSTALL_HINT}`;
    }
    loaded = null;
  }
  return loaded;
}

/** The onnxruntime-node version this package lists as its optional dependency (a test checks). */
export const ONNX_RUNTIME_NODE_VERSION = '1.30.0';

/**
 * npm runs onnxruntime-node's install script, which downloads CUDA files on linux/x64; without
 * network access it fails and npm silently drops the optional package (and `npm ci` fails on it
 * as a direct dependency). Skipping the download, in .npmrc so that reinstalls skip it too,
 * loses nothing here: we use the CPU execution provider only.
 */
export const ONNX_RUNTIME_INSTALL_HINT = `For the fast native kernels, in your project run: echo onnxruntime-node-install=skip >> .npmrc && npm install onnxruntime-node@${ONNX_RUNTIME_NODE_VERSION}`;

export function onnxRuntimeUnavailableReason(): string {
  loadOnnxRuntime();
  return loaded == null ? `onnxruntime-node could not be loaded: ${loadError}` : '';
}

export interface SessionSettings {
  /** ONNX Runtime intra-op threads per kernel call. */
  threads: number;
  /** How many compiled graphs to keep; the least recently used is disposed beyond that. */
  cacheSize: number;
  /** ONNX Runtime's per-session memory arena and memory pattern (off: freed after each run). */
  arenas: boolean;
}

export interface GraphInput {
  data: GraphArray;
  shape: number[];
}

interface CompiledGraph {
  session: OrtSession;
  inputNames: string[];
  outputNames: string[];
  /** The outputs' shapes as the graph declares them (may be views of the kernel's shapes). */
  outputShapes: number[][];
}

const dtypeOf = (data: GraphArray) => (data instanceof Int32Array ? 'int32' : 'float32');

/** Compiles small graphs once per key and runs them synchronously. */
export class SessionCache {
  private readonly sessions = new Map<string, CompiledGraph>();
  created = 0;

  constructor(
    private readonly runtime: LoadedRuntime,
    private readonly settings: SessionSettings,
  ) {}

  /** Whether the graph under `key` is compiled (and so has been built and run before). */
  has(key: string): boolean {
    return this.sessions.has(key);
  }

  get size(): number {
    return this.sessions.size;
  }

  /**
   * Runs the graph cached under `key` (building it with `build` on first use) on `inputs`,
   * in the order of the graph's inputs, and returns its single float32 output's values, written
   * into an array from `allocate` (which the graph overwrites entirely).
   */
  run(
    key: string,
    build: () => OnnxGraph,
    inputs: GraphInput[],
    allocate: (length: number) => Float32Array = (n) => new Float32Array(n),
  ): Float32Array {
    const entry = this.lookUp(key, build);
    const out = allocate(entry.outputShapes[0]!.reduce((a, b) => a * b, 1));
    this.runEntry(entry, inputs, [out]);
    return out;
  }

  /**
   * As run, for graphs with several outputs or int32 values: writes the outputs, in the
   * graph's order, into `outputs` (typed arrays of the declared sizes and types).
   */
  runInto(key: string, build: () => OnnxGraph, inputs: GraphInput[], outputs: GraphArray[]): void {
    this.runEntry(this.lookUp(key, build), inputs, outputs);
  }

  private lookUp(key: string, build: () => OnnxGraph): CompiledGraph {
    let entry = this.sessions.get(key);
    if (entry == null) {
      entry = this.compile(build());
      this.sessions.set(key, entry);
      this.evictBeyondCapacity();
    } else {
      // Map keeps insertion order: re-inserting marks the entry most recently used.
      this.sessions.delete(key);
      this.sessions.set(key, entry);
    }
    return entry;
  }

  private runEntry(entry: CompiledGraph, inputs: GraphInput[], outputs: GraphArray[]): void {
    const { Tensor } = this.runtime;
    const feeds: Record<string, OrtTensor> = {};
    inputs.forEach((input, i) => {
      feeds[entry.inputNames[i]!] = new Tensor(dtypeOf(input.data), input.data, input.shape);
    });
    const fetches: Record<string, OrtTensor> = {};
    outputs.forEach((data, i) => {
      fetches[entry.outputNames[i]!] = new Tensor(dtypeOf(data), data, entry.outputShapes[i]!);
    });
    entry.session.run(feeds, fetches, {});
  }

  dispose(): void {
    for (const { session } of this.sessions.values()) session.dispose();
    this.sessions.clear();
  }

  private compile(graph: OnnxGraph): CompiledGraph {
    if (graph.outputs.length === 0) throw new Error('A native kernel graph needs an output.');
    const bytes = encodeOnnxModel(graph);
    const session = new this.runtime.binding.binding.InferenceSession();
    session.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
      intraOpNumThreads: this.settings.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      // Each session's arena keeps its graph's largest intermediates after the run: with a
      // few hundred cached graphs that was ~250 MB of a ResNet-20 step's peak (1638 -> 1387 MB).
      enableCpuMemArena: this.settings.arenas,
      enableMemPattern: this.settings.arenas,
      // Idle pool threads must not spin: the JS thread runs the small ops between our calls.
      extra: { session: { intra_op: { allow_spinning: ortSpinning() } } },
    });
    this.created++;
    return {
      session,
      inputNames: graph.inputs.map((i) => i.name),
      outputNames: graph.outputs.map((o) => o.name),
      outputShapes: graph.outputs.map((o) => [...o.shape]),
    };
  }

  private evictBeyondCapacity(): void {
    while (this.sessions.size > this.settings.cacheSize) {
      const [oldestKey, oldest] = this.sessions.entries().next().value!;
      oldest.session.dispose();
      this.sessions.delete(oldestKey);
    }
  }
}
