/**
 * enableNativeKernels(): routes TF.js's heavy kernels (matmul, conv and their gradients) on
 * the cpu backend through ONNX Runtime's MLAS kernels, keeping TF.js's own kernel as the
 * fallback for every call the native path does not handle (other dtypes, NCHW, unsupported
 * attributes, a missing onnxruntime-node). Results agree with TF.js to float32 rounding;
 * gradient registrations are untouched, so first- and second-order autodiff are unchanged.
 */
import * as tf from '@tensorflow/tfjs';
import { installSecondOrderSupport } from '../autodiff/install.js';
import { installFusedAdaHessianUpdate } from '../optimizers/fused-update.js';
import { installFusedAdamWUpdate } from '../optimizers/fused-first-order.js';
import { cpuAdaHessianUpdate } from './adahessian-update.js';
import { cpuAdamWUpdate, installFusedFirstOrderUpdates } from './first-order-update.js';
import { OutputBufferPool } from './buffer-pool.js';
import { enableRecycledArrays } from './recycled-arrays.js';
import {
  NATIVE_KERNELS,
  type DirectKernel,
  type KernelBuffers,
  type NativeKernel,
  type NativePlan,
} from './kernels/index.js';
import { reluProbe, useReluOp } from './kernels/elementwise.js';
import { RELU_GRAD } from '../kernels/relu-grad.js';
import { loadOnnxRuntime, onnxRuntimeUnavailableReason, SessionCache } from './onnx-runtime.js';
import { disableStepGraphs, enableStepGraphs } from './step-graph/enable.js';
import { mallocKeepsFreedMemory } from './malloc-tuning.js';
import { resolveThreads, threadCountProblem, type ThreadCount } from './threads.js';

export interface NativeKernelOptions {
  /** Backends whose kernels are wrapped (default ['cpu']; 'wasm' works too, with copies). */
  backends?: string[];
  /**
   * ONNX Runtime's intra-op threads for each kernel call and step graph: a count, or 'auto' (the
   * machine's logical processors, at most 4). Default: 'auto' (src/native/threads.ts decides it,
   * in one place; the ADAHESSIAN_THREADS environment variable overrides it). Every compiled
   * graph has its own thread pool. More than one thread rounds differently (sums in row blocks,
   * the embedding gradient as one product); status.threads says how many ran.
   */
  threads?: ThreadCount;
  /** Compiled graphs kept (default 256); one per kernel, shape and attribute combination. */
  cacheSize?: number;
  /**
   * ONNX Runtime's memory arena per compiled graph (default false). An arena keeps its graph's
   * intermediates allocated between calls; over hundreds of graphs that is hundreds of MB.
   */
  sessionArenas?: boolean;
  /** Only these kernel names (default: all of NATIVE_KERNEL_NAMES). */
  kernels?: string[];
  /**
   * AdaHessian's, Adam's (tf.train.adam and AdamW) and momentum SGD's updates on the cpu
   * backend as one typed-array pass per variable instead of ~12-15 tensor ops each (default
   * true; see first-order-update.ts).
   */
  fusedOptimizerUpdate?: boolean;
  /**
   * Bytes of disposed native outputs kept for reuse on the cpu backend (default 256 MiB; 0
   * turns reuse off). Only arrays nothing else has read are reused (see buffer-pool.ts).
   */
  outputPoolBytes?: number;
  /**
   * Which training steps on the cpu backend run as one replayed ONNX graph once the step's shape
   * has been seen twice (falling back to op by op by themselves, see
   * src/native/step-graph/step-graph.ts): 'all' (default; `true` is the same), AdaHessian's
   * minimize and the gradients of TF.js's own optimizers' minimize (tf.train.adam, sgd,
   * momentum, ..., AdamW, and so tf.layers' fit); 'adahessian', AdaHessian's minimize only
   * (TF.js's optimizers then get TF.js's gradients bit for bit); false, none.
   */
  stepGraphs?: StepGraphMode | boolean;
  /**
   * ONNX Runtime's memory arena for step graphs. Default: off when glibc was told at start to
   * keep freed memory (malloc-tuning.ts: MALLOC_TRIM_THRESHOLD_ and MALLOC_MMAP_THRESHOLD_);
   * otherwise by the step: off for big steps (ResNet-20's and the char transformer's AdaHessian
   * steps: ~220 MB less peak RSS), turned on if their runs page-fault, on for the rest
   * (src/native/step-graph/arena.ts). true / false: always on / off.
   */
  stepGraphMemoryArena?: boolean;
}

/** Which steps run as step graphs: see NativeKernelOptions.stepGraphs. */
export type StepGraphMode = 'all' | 'adahessian';
export const STEP_GRAPH_MODES: readonly StepGraphMode[] = ['all', 'adahessian'];

const DEFAULT_POOL_BYTES = 256 * 1024 * 1024;

export interface NativeKernelStatus {
  enabled: boolean;
  /** Why the native path is off, when it is. */
  reason: string;
  runtimeVersion: string | null;
  /** ONNX Runtime's intra-op threads, resolved ('auto' and the default as the number used). */
  threads: number;
  backends: string[];
  /** The kernel names taken over (per backend, the same list). */
  kernels: string[];
  /** Calls served natively and calls handed to TF.js's kernel, since enabling. */
  nativeCalls: number;
  fallbackCalls: number;
  /** Compiled graphs in the cache now, and compiled in total since enabling. */
  cachedGraphs: number;
  compiledGraphs: number;
  /** The last native failure that caused a fallback (each failing graph is tried once). */
  lastError: string | null;
  /** Output arrays reused from disposed native outputs since enabling. */
  reusedOutputs: number;
  /**
   * Calls that folded a deferred input, never computed, into their own work since enabling
   * (cpu only): a conv's bias add (or a broadcast bias) run as one Conv with the bias, the sum
   * of two convs as one, relu's mask applied to a max pool's gradient at the pool's winners,
   * and a masked product read there by MaxPoolGradTranspose.
   */
  fusedCalls: number;
  /**
   * Which steps are replayed as ONNX graphs: 'all', 'adahessian' (see NativeKernelOptions), or
   * false (stepGraphsStatus() says more).
   */
  stepGraphs: StepGraphMode | false;
}

export const NATIVE_KERNEL_NAMES: readonly string[] = NATIVE_KERNELS.map((k) => k.kernelName);

/** cpu has it (not on the public KernelBackend type); wasm does not, and is written to. */
interface TensorInfoMaker {
  makeTensorInfo?(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}

interface Installed {
  /** The options as the caller gave them (nativeKernelOptions()). */
  options: NativeKernelOptions;
  cache: SessionCache;
  restore: (() => void)[];
  failedKeys: Set<string>;
  status: NativeKernelStatus;
  /** Memoized kernels' outputs by input data id (weak: they go with the input's data). */
  memo: WeakMap<object, { key: string; output: tf.TensorInfo }>;
  /** Output arrays for reuse, and the backends whose disposal feeds it (installed lazily). */
  pool: OutputBufferPool | null;
  pooledBackends: WeakSet<object>;
  buffers: KernelBuffers;
}

/** The reference counting that cpu and wasm backends have (not on the public type). */
interface RefCounting {
  refCount(dataId: object): number;
  incRef(dataId: object): void;
}

let installed: Installed | null = null;

/**
 * Takes over the heavy kernels for the given backends; returns what it did. When
 * onnxruntime-node is missing it changes nothing and says why in `reason`. Calling it again
 * re-installs with the new options.
 */
export function enableNativeKernels(options: NativeKernelOptions = {}): NativeKernelStatus {
  disableNativeKernels();
  // Our fallbacks must be the final TF.js kernels, so let the library register its own first.
  installSecondOrderSupport();
  const backends = options.backends ?? ['cpu'];
  validateOptions(options, backends);
  const threads = resolveThreads(options.threads);
  const runtime = loadOnnxRuntime();
  if (runtime == null) {
    return { ...emptyStatus(threads, backends), reason: onnxRuntimeUnavailableReason() };
  }
  const cache = new SessionCache(runtime, {
    threads,
    cacheSize: options.cacheSize ?? 256,
    arenas: options.sessionArenas ?? false,
  });
  useReluOp(reluOpMatchesTfjs(cache));
  const kernels = NATIVE_KERNELS.filter((k) => options.kernels?.includes(k.kernelName) ?? true);
  const status: NativeKernelStatus = {
    ...emptyStatus(threads, backends),
    enabled: true,
    runtimeVersion: runtime.version,
    kernels: kernels.map((k) => k.kernelName),
  };
  const maxPoolBytes = options.outputPoolBytes ?? DEFAULT_POOL_BYTES;
  const pool = maxPoolBytes > 0 ? new OutputBufferPool(maxPoolBytes) : null;
  const state: Installed = {
    options: copyOptions(options),
    cache,
    restore: [],
    failedKeys: new Set(),
    status,
    memo: new WeakMap(),
    pool,
    pooledBackends: new WeakSet(),
    buffers: {
      read: (backend, dataId) => {
        const values = pool?.valuesOf(backend, dataId) ?? backend.readSync(dataId);
        // A float32 tensor cast from int32 or bool shares that array (TF.js's Cast does not
        // copy when no precision is lost); ONNX Runtime and our loops want float32 values.
        return values instanceof Float32Array ? values : Float32Array.from(values as Int32Array);
      },
      zeros: (length) => (pool == null ? new Float32Array(length) : pool.take(length).fill(0)),
      take: (length) => (pool == null ? new Float32Array(length) : pool.take(length)),
      output: (backend, shape, values) => makeOutput(state, backend, shape, values),
      deferred: (backend, shape, fill, inputs, info) =>
        makeDeferredOutput(state, backend, shape, fill, inputs, info),
      native: (kernel, inputs, attrs, backend) => tryNative(kernel, inputs, attrs, backend, state),
      countFused: () => void status.fusedCalls++,
      pendingInfo: (dataId) => pool?.pendingInfo(dataId),
    },
  };
  for (const backendName of backends) {
    for (const kernel of kernels) state.restore.push(wrapKernel(kernel, backendName, state));
  }
  if (backends.includes('cpu')) state.restore.push(hideKernel(RELU_GRAD, 'cpu'));
  // A step's probes, graph outputs and updated weights in arrays of the last step's
  // (recycled-arrays.ts); ADAHESSIAN_RECYCLED_ARRAYS=0 leaves them new (benchmarks' A/Bs).
  if (backends.includes('cpu') && process.env['ADAHESSIAN_RECYCLED_ARRAYS'] !== '0') {
    state.restore.push(enableRecycledArrays());
  }
  if (backends.includes('cpu') && options.fusedOptimizerUpdate !== false) {
    state.restore.push(installFusedAdaHessianUpdate('cpu', cpuAdaHessianUpdate));
    // Adam (tf.train.adam's class and our AdamW) and momentum SGD: first-order-update.ts.
    state.restore.push(installFusedAdamWUpdate('cpu', cpuAdamWUpdate));
    state.restore.push(installFusedFirstOrderUpdates());
  }
  const stepGraphs = options.stepGraphs === true ? 'all' : (options.stepGraphs ?? 'all');
  if (backends.includes('cpu') && stepGraphs !== false) {
    // Step graphs (src/native/step-graph/): whole training steps as one ONNX Runtime call.
    const firstOrder = stepGraphs === 'all';
    // The output pool keeps nothing while a step is captured or replayed (buffer-pool.ts).
    const suspendOutputPool = () => state.pool?.suspend() ?? (() => {});
    const memoryArena =
      options.stepGraphMemoryArena ?? (mallocKeepsFreedMemory() ? false : undefined);
    status.stepGraphs = enableStepGraphs({ threads, firstOrder, suspendOutputPool, memoryArena })
      .enabled
      ? stepGraphs
      : false;
    state.restore.push(disableStepGraphs);
  }
  installed = state;
  return { ...status };
}

/** Runs ORT's Relu once on NaN, -0 and infinities: true when it gives TF.js's values. */
function reluOpMatchesTfjs(cache: SessionCache): boolean {
  const { input, expected } = reluProbe();
  const shape = [input.length];
  try {
    const out = cache.run(
      'reluProbe',
      () => ({
        nodes: [{ opType: 'Relu', inputs: ['x'], outputs: ['y'] }],
        inputs: [{ name: 'x', shape }],
        outputs: [{ name: 'y', shape }],
      }),
      [{ data: input, shape }],
    );
    return expected.every(
      (v, i) => Object.is(v, out[i]) || (Number.isNaN(v) && Number.isNaN(out[i]!)),
    );
  } catch {
    return false;
  }
}

/** Restores TF.js's own kernels and frees every compiled graph. Safe to call when off. */
export function disableNativeKernels(): void {
  if (installed == null) return;
  // Deferred outputs still unread are computed now, while their graphs are there.
  installed.pool?.materializeAll();
  for (const restore of installed.restore.reverse()) restore();
  installed.cache.dispose();
  installed = null;
}

export function nativeKernelStatus(): NativeKernelStatus {
  if (installed == null) {
    return { ...emptyStatus(0, []), reason: 'enableNativeKernels() has not been called.' };
  }
  const { status, cache, pool } = installed;
  return {
    ...status,
    cachedGraphs: cache.size,
    compiledGraphs: cache.created,
    reusedOutputs: pool?.reused ?? 0,
  };
}

/**
 * The options the native kernels were last enabled with, as the caller gave them (defaults left
 * out), or null when they are off: a caller changing one option re-enables with the rest kept.
 */
export function nativeKernelOptions(): NativeKernelOptions | null {
  return installed == null ? null : copyOptions(installed.options);
}

function copyOptions(options: NativeKernelOptions): NativeKernelOptions {
  const copy = { ...options };
  if (options.backends !== undefined) copy.backends = [...options.backends];
  if (options.kernels !== undefined) copy.kernels = [...options.kernels];
  return copy;
}

function emptyStatus(threads: number, backends: string[]): NativeKernelStatus {
  return {
    enabled: false,
    reason: '',
    runtimeVersion: null,
    threads,
    backends,
    kernels: [],
    nativeCalls: 0,
    fallbackCalls: 0,
    cachedGraphs: 0,
    compiledGraphs: 0,
    lastError: null,
    reusedOutputs: 0,
    fusedCalls: 0,
    stepGraphs: false,
  };
}

function validateOptions(options: NativeKernelOptions, backends: string[]): void {
  const threadsProblem = options.threads === undefined ? '' : threadCountProblem(options.threads);
  if (threadsProblem !== '') {
    throw new Error(
      `enableNativeKernels: 'threads' ${threadsProblem}, got ${JSON.stringify(options.threads)}.`,
    );
  }
  if (
    options.cacheSize != null &&
    (!Number.isInteger(options.cacheSize) || options.cacheSize < 1)
  ) {
    throw new Error(
      `enableNativeKernels: 'cacheSize' must be a positive integer, got ${options.cacheSize}.`,
    );
  }
  if (
    options.outputPoolBytes != null &&
    (!Number.isFinite(options.outputPoolBytes) || options.outputPoolBytes < 0)
  ) {
    throw new Error(
      `enableNativeKernels: 'outputPoolBytes' must be a non-negative number, got ${options.outputPoolBytes}.`,
    );
  }
  const arena = options.stepGraphMemoryArena;
  if (arena != null && typeof arena !== 'boolean') {
    throw new Error(
      `enableNativeKernels: 'stepGraphMemoryArena' must be true or false, got ${JSON.stringify(arena)}.`,
    );
  }
  const { stepGraphs } = options;
  if (
    stepGraphs != null &&
    typeof stepGraphs !== 'boolean' &&
    !STEP_GRAPH_MODES.includes(stepGraphs)
  ) {
    throw new Error(
      `enableNativeKernels: 'stepGraphs' must be 'all', 'adahessian', true or false, got ${JSON.stringify(stepGraphs)}.`,
    );
  }
  for (const name of options.kernels ?? []) {
    if (!NATIVE_KERNEL_NAMES.includes(name)) {
      throw new Error(
        `enableNativeKernels: unknown kernel '${name}'; expected some of ${NATIVE_KERNEL_NAMES.join(', ')}.`,
      );
    }
  }
  for (const name of backends) {
    if (name !== 'cpu' && name !== 'wasm') {
      throw new Error(
        `enableNativeKernels: backend '${name}' is not supported; use 'cpu' or 'wasm'.`,
      );
    }
  }
}

/**
 * Unregisters a kernel while the native path is on; returns how to put it back. ReluGrad goes:
 * relu's gradient then takes the stock route, Step (memoized, one JS pass) and Multiply (ONNX
 * Runtime), which beats the one-pass JS ReluGrad once the mask is asked for more than once (a
 * Hessian-vector product asks for it three times) and matches it otherwise.
 */
function hideKernel(kernelName: string, backendName: string): () => void {
  const original = tf.getKernel(kernelName, backendName);
  if (original == null) return () => {};
  tf.unregisterKernel(kernelName, backendName);
  return () => {
    if (tf.getKernel(kernelName, backendName) == null) tf.registerKernel(original);
  };
}

/** Registers the native version of `kernel` for `backendName`; returns how to undo it. */
function wrapKernel(
  kernel: NativeKernel | DirectKernel,
  backendName: string,
  state: Installed,
): () => void {
  const original = tf.getKernel(kernel.kernelName, backendName);
  const kernelFunc: tf.KernelFunc = (args) => {
    const backend = args.backend as tf.KernelBackend;
    // A kernel may have both: its direct JS path for some calls, an ONNX graph for others.
    let result =
      'run' in kernel ? tryDirect(kernel, args.inputs, args.attrs ?? {}, backend, state) : null;
    if (result == null && 'plan' in kernel) {
      result = tryNative(kernel, args.inputs, args.attrs ?? {}, backend, state);
    }
    if (result != null) {
      state.status.nativeCalls++;
      return result;
    }
    state.status.fallbackCalls++;
    if (original == null) {
      throw new Error(
        `Kernel '${kernel.kernelName}' is not available on backend '${backendName}' for these inputs ` +
          '(the native kernel does not handle them and TF.js has no kernel of its own).',
      );
    }
    return original.kernelFunc(args);
  };
  if (original != null) tf.unregisterKernel(kernel.kernelName, backendName);
  tf.registerKernel({ kernelName: kernel.kernelName, backendName, kernelFunc });
  return () => {
    tf.unregisterKernel(kernel.kernelName, backendName);
    if (original != null) tf.registerKernel(original);
  };
}

function tryDirect(
  kernel: DirectKernel,
  inputs: tf.NamedTensorInfoMap,
  attrs: tf.NamedAttrMap,
  backend: tf.KernelBackend,
  state: Installed,
): tf.TensorInfo | null {
  try {
    const memoInput = kernel.memoize === true ? Object.values(inputs)[0] : undefined;
    const key =
      memoInput && `${kernel.kernelName}|[${memoInput.shape.join(',')}]|${JSON.stringify(attrs)}`;
    if (memoInput != null && key != null) {
      const hit = memoized(state, backend, memoInput, key);
      if (hit != null) return hit;
    }
    poolDisposals(state, backend);
    const output = kernel.run(inputs, attrs, backend, state.buffers);
    if (output != null && memoInput != null && key != null) {
      state.memo.set(memoInput.dataId, { key, output });
    }
    return output;
  } catch (e) {
    state.status.lastError = `${kernel.kernelName}: ${e instanceof Error ? e.message : String(e)}`;
    return null;
  }
}

function tryNative(
  kernel: NativeKernel,
  inputs: tf.NamedTensorInfoMap,
  attrs: tf.NamedAttrMap,
  backend: tf.KernelBackend,
  state: Installed,
): tf.TensorInfo | null {
  let plan: NativePlan | null;
  try {
    plan = kernel.plan(inputs, attrs, { threads: state.status.threads });
  } catch (e) {
    state.status.lastError = `${kernel.kernelName}: ${e instanceof Error ? e.message : String(e)}`;
    return null;
  }
  if (plan == null || state.failedKeys.has(plan.key)) return null;
  const memoize = kernel.memoize === true && plan.inputs.length === 1;
  if (memoize) {
    const hit = memoized(state, backend, plan.inputs[0]!, plan.key);
    if (hit != null) return hit;
  }
  poolDisposals(state, backend);
  const readInputs = (p: NativePlan) =>
    p.inputs.map((info, i) => ({
      data: state.buffers.read(backend, info.dataId),
      shape: p.inputShapes[i]!,
    }));
  const info =
    state.pool != null && state.cache.has(plan.key)
      ? kernel.defer?.(inputs, attrs, plan)
      : undefined;
  if (info !== undefined) {
    // A graph that compiled and ran before: its output is computed when first read, and a
    // kernel that can fold it into its own work (kernel.defer says what it is) need not.
    const ready = plan;
    const fill = (values: Float32Array) => {
      state.cache.run(ready.key, ready.build, readInputs(ready), () => values);
    };
    const deferred = makeDeferredOutput(state, backend, ready.outShape, fill, ready.inputs, info);
    if (deferred != null) return deferred;
  }
  const graphInputs = readInputs(plan);
  let values: Float32Array;
  try {
    const { pool } = state;
    values = state.cache.run(
      plan.key,
      plan.build,
      graphInputs,
      pool == null ? undefined : (n) => pool.take(n),
    );
  } catch (e) {
    // Compile or run failures (an attribute combination ONNX Runtime rejects) fall back
    // for good; the error is kept for nativeKernelStatus().
    state.failedKeys.add(plan.key);
    state.status.lastError = `${plan.key}: ${e instanceof Error ? e.message : String(e)}`;
    return null;
  }
  const output = makeOutput(state, backend, plan.outShape, values);
  if (memoize) state.memo.set(plan.inputs[0]!.dataId, { key: plan.key, output });
  return output;
}

/**
 * A memoized kernel's earlier output for this input, shared (as Identity shares data) while
 * it is alive: tensors never change their data, so the same data id gives the same output.
 */
function memoized(
  state: Installed,
  backend: tf.KernelBackend,
  input: tf.TensorInfo,
  key: string,
): tf.TensorInfo | null {
  const hit = state.memo.get(input.dataId);
  const counting = backend as unknown as Partial<RefCounting>;
  if (
    hit?.key === key &&
    typeof counting.refCount === 'function' &&
    typeof counting.incRef === 'function' &&
    counting.refCount(hit.output.dataId) > 0
  ) {
    counting.incRef(hit.output.dataId);
    return { ...hit.output, shape: [...hit.output.shape] };
  }
  return null;
}

/** The tensor for a native output array; on the cpu backend, watched for reuse. */
function makeOutput(
  state: Installed,
  backend: tf.KernelBackend,
  shape: number[],
  values: Float32Array,
): tf.TensorInfo {
  const maker = backend as unknown as TensorInfoMaker;
  if (maker.makeTensorInfo == null) {
    // wasm: the values are copied onto its heap.
    return { dataId: backend.write(values, shape, 'float32'), shape, dtype: 'float32' };
  }
  const info = maker.makeTensorInfo(shape, 'float32', values);
  state.pool?.track(backend, info.dataId, values);
  return info;
}

/**
 * A tensor computed on first read (see KernelBuffers.deferred): the inputs it reads are kept
 * by one backend reference each, dropped once it ran or the tensor went unread.
 */
function makeDeferredOutput(
  state: Installed,
  backend: tf.KernelBackend,
  shape: number[],
  fill: (values: Float32Array) => void,
  inputs: tf.TensorInfo[],
  info: unknown,
): tf.TensorInfo | null {
  const counting = backend as unknown as Partial<RefCounting>;
  // Only outputs the pool watches (cpu) can be deferred: their values are read through it.
  if (state.pool == null || !state.pool.watches(backend) || typeof counting.incRef !== 'function') {
    return null;
  }
  const values = state.pool.take(shape.reduce((a, b) => a * b, 1));
  const output = makeOutput(state, backend, shape, values);
  for (const input of inputs) counting.incRef(input.dataId);
  const release = () => {
    for (const input of inputs) backend.disposeData(input.dataId);
  };
  if (!state.pool.defer(output.dataId, fill, release, info)) {
    release();
    fill(values);
  }
  return output;
}

/** Makes the backend's disposals feed the pool (once per backend instance). */
function poolDisposals(state: Installed, backend: tf.KernelBackend): void {
  if (state.pool == null || state.pooledBackends.has(backend)) return;
  state.pooledBackends.add(backend);
  state.restore.push(state.pool.install(backend));
}
