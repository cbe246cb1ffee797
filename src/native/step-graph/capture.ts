/**
 * Records every kernel call a computation makes on the active backend (see step-graph.ts):
 * each registered kernel is wrapped for the duration, and the backend's `write` is watched so
 * that tensors made in JS during the recording (scalars in gradient code, masks) are told apart
 * from tensors that existed before it (variables, the batch, the probes).
 *
 * Stubbed (`stub`): no kernel runs. Each call must be the earlier recording's call at the same
 * place (kernel, attributes, input dtypes and shapes), and returns a placeholder of that call's
 * recorded output shape (or its input's data where that call aliased it), so the recording is
 * made without arithmetic or the step's memory: a step graph's second capture only confirms
 * that the step's structure repeats (step-graph.ts, step 3). Anything else, or reading a
 * placeholder's values, throws StubMismatch.
 */
import * as tf from '@tensorflow/tfjs';

export type StepDtype = 'float32' | 'int32' | 'bool';

/** Where a kernel's input comes from: an earlier recorded output, or outside the recording. */
export type ValueRef = { kind: 'value'; index: number } | { kind: 'external'; index: number };

export interface RecordedInput {
  /** The kernel's name for the input (e.g. 'a', 'x'). */
  name: string;
  ref: ValueRef;
  shape: number[];
  dtype: StepDtype;
}

export interface RecordedCall {
  kernelName: string;
  attrs: Record<string, unknown>;
  inputs: RecordedInput[];
  /** Value indices of the outputs, in order. */
  outputs: number[];
  /**
   * Per output, the input (index into `inputs`) whose data it shares (a reshape or identity
   * returns its input's data id), or -1: a replay's stub must alias the same way.
   */
  aliases: number[];
}

export interface RecordedValue {
  shape: number[];
  dtype: StepDtype;
}

/** A tensor read by a kernel that no recorded kernel produced. */
export interface ExternalValue {
  shape: number[];
  dtype: StepDtype;
  /** 'made': written from JS during the recording (a constant candidate); 'prior': existed before. */
  origin: 'made' | 'prior';
  /** The values of a 'made' tensor, or of a small 'prior' one (baked in, checked on replay). */
  values?: Float32Array | Int32Array | Uint8Array;
  /** The first (call, input) that read it: where a replay finds its counterpart. */
  firstRead: { call: number; input: number };
  /** The tensor's data id during the recording (not kept beyond it). */
  dataId?: object;
}

export interface Recording {
  calls: RecordedCall[];
  values: RecordedValue[];
  externals: ExternalValue[];
}

interface WritableBackend {
  write(values: unknown, shape: number[], dtype: string): object;
  readSync(dataId: object): unknown;
  incRef(dataId: object): void;
}

/** Kernels registered for `backendName` now, wrapped by `wrap` until the returned undo runs. */
export function wrapAllKernels(
  backendName: string,
  wrap: (config: tf.KernelConfig) => tf.KernelFunc,
): () => void {
  const configs = tf.getKernelsForBackend(backendName);
  for (const config of configs) {
    tf.unregisterKernel(config.kernelName, backendName);
    tf.registerKernel({ ...config, kernelFunc: wrap(config) });
  }
  return () => {
    for (const config of configs) {
      tf.unregisterKernel(config.kernelName, backendName);
      tf.registerKernel(config);
    }
  };
}

const asDtype = (dtype: string, what: string): StepDtype => {
  if (dtype === 'float32' || dtype === 'int32' || dtype === 'bool') return dtype;
  throw new StepGraphRefusal(`${what} has dtype ${dtype} (only float32, int32 and bool).`);
};

/** Why a step cannot be compiled: it stays op by op. */
export class StepGraphRefusal extends Error {
  override name = 'StepGraphRefusal';
  /** The step's op-by-op result when the refusal came after the step had run. */
  stepResult?: unknown;
}

/** A stubbed recording that is not the earlier one (see the header): record it for real. */
export class StubMismatch extends Error {
  override name = 'StubMismatch';
}

/** How to record without arithmetic: the recording to follow, and where its placeholders go. */
export interface StubPlan {
  from: Recording;
  /** Filled with the placeholders' data ids (they hold no values). */
  placeholders: Set<object>;
}

/** Runs `body` with every kernel call of the active backend recorded; returns both. */
export function record<T>(
  body: (callCount: () => number) => T,
  stub?: StubPlan,
): {
  result: T;
  recording: Recording;
  /** What a tensor alive at the end holds: a recorded value, an external, or null (neither). */
  refOf: (tensor: tf.Tensor) => ValueRef | null;
} {
  const backendName = tf.getBackend();
  const backend = tf.backend() as unknown as WritableBackend;
  const calls: RecordedCall[] = [];
  const values: RecordedValue[] = [];
  const externals: ExternalValue[] = [];
  /** Data id -> its latest recorded value (a reshape shares its input's data id). */
  const producedBy = new Map<object, number>();
  const externalOf = new Map<object, number>();
  const madeHere = new WeakSet<object>();
  let failure: StepGraphRefusal | null = null;

  const originalWrite = backend.write;
  backend.write = function (this: WritableBackend, ...args: [unknown, number[], string]) {
    const dataId = originalWrite.apply(this, args);
    madeHere.add(dataId);
    return dataId;
  };
  // Kernels run by another kernel (our cpu Conv2DBackpropFilter runs BatchMatMul on a patch
  // matrix it writes) are part of the outer call: only outermost calls are recorded.
  let depth = 0;
  // A stub's mismatch, kept in case the body catches it: the recording is wrong either way.
  let mismatch: StubMismatch | null = null;
  const stubbed = (kernelName: string, args: Parameters<tf.KernelFunc>[0]) => {
    const at = calls.length;
    const call = stub!.from.calls[at];
    const infos = Object.values(args.inputs).filter((x): x is tf.TensorInfo => x != null);
    const why =
      call == null || call.kernelName !== kernelName
        ? `call ${at}: ${kernelName} where ${call?.kernelName ?? 'nothing'} was`
        : JSON.stringify(copyAttrs(args.attrs ?? {})) !== JSON.stringify(call.attrs)
          ? `call ${at} (${kernelName}): other attributes`
          : infos.length !== call.inputs.length ||
              infos.some(
                (info, i) =>
                  info.dtype !== call.inputs[i]!.dtype ||
                  info.shape.join(',') !== call.inputs[i]!.shape.join(','),
              )
            ? `call ${at} (${kernelName}): other inputs`
            : null;
    if (why != null) throw (mismatch ??= new StubMismatch(why));
    const outs = call!.outputs.map((v, o) => {
      const { shape, dtype } = stub!.from.values[v]!;
      const alias = call!.aliases[o]!;
      let dataId: object;
      if (alias >= 0) {
        // A kernel that returns its input's data (reshape) takes one more reference to it.
        dataId = infos[alias]!.dataId;
        backend.incRef(dataId);
      } else {
        dataId = originalWrite.call(backend, undefined, shape, dtype);
        stub!.placeholders.add(dataId);
      }
      return { dataId, shape: [...shape], dtype };
    });
    return outs.length === 1 ? outs[0]! : outs;
  };
  const originalRead = backend.readSync;
  if (stub != null) {
    backend.readSync = function (this: WritableBackend, dataId: object) {
      if (stub.placeholders.has(dataId))
        throw (mismatch ??= new StubMismatch("the step reads a tensor's value"));
      return originalRead.call(this, dataId);
    };
  }
  const undo = wrapAllKernels(backendName, (config) => (args) => {
    if (depth > 0) return config.kernelFunc(args);
    let out: ReturnType<tf.KernelFunc>;
    if (stub != null) {
      out = stubbed(config.kernelName, args);
    } else {
      depth++;
      try {
        out = config.kernelFunc(args);
      } finally {
        depth--;
      }
    }
    if (failure != null) return out;
    try {
      const callIndex = calls.length;
      const inputs: RecordedInput[] = [];
      Object.entries(args.inputs).forEach(([name, info], slot) => {
        if (info == null) return;
        const dtype = asDtype(info.dtype, `Input '${name}' of ${config.kernelName}`);
        const produced = producedBy.get(info.dataId);
        let ref: ValueRef;
        if (produced != null) {
          ref = { kind: 'value', index: produced };
        } else {
          let index = externalOf.get(info.dataId);
          if (index == null) {
            index = externals.length;
            externalOf.set(info.dataId, index);
            const made = madeHere.has(info.dataId);
            externals.push({
              shape: [...info.shape],
              dtype,
              origin: made ? 'made' : 'prior',
              firstRead: { call: callIndex, input: slot },
              dataId: info.dataId,
              // Read now: a constant made in JS is often disposed before the recording ends.
              // Small tensors made before (tf.layers caches its scalars) are read too: they
              // are baked in like constants and checked at every replay.
              ...(made || sizeOf(info.shape) <= SMALL
                ? { values: readValues(backend, info.dataId) }
                : {}),
            });
          }
          ref = { kind: 'external', index };
        }
        inputs.push({ name, ref, shape: [...info.shape], dtype });
      });
      const outs = (Array.isArray(out) ? out : [out]) as tf.TensorInfo[];
      const inputIds = Object.values(args.inputs)
        .filter((x): x is tf.TensorInfo => x != null)
        .map((x) => x.dataId);
      const aliases = outs.map((info) => inputIds.indexOf(info.dataId));
      const outputs = outs.map((info) => {
        const index = values.length;
        values.push({
          shape: [...info.shape],
          dtype: asDtype(info.dtype, `Output of ${config.kernelName}`),
        });
        producedBy.set(info.dataId, index);
        return index;
      });
      calls.push({
        kernelName: config.kernelName,
        attrs: copyAttrs(args.attrs ?? {}),
        inputs,
        outputs,
        aliases,
      });
    } catch (e) {
      failure = e instanceof StepGraphRefusal ? e : new StepGraphRefusal(String(e));
    }
    return out;
  });
  let result: T;
  try {
    result = body(() => calls.length);
  } finally {
    undo();
    backend.write = originalWrite;
    if (stub != null) backend.readSync = originalRead;
  }
  if (mismatch != null) throw mismatch;
  if (failure != null) throw failure;
  const refOf = (tensor: tf.Tensor): ValueRef | null => {
    const produced = producedBy.get(tensor.dataId);
    if (produced != null) return { kind: 'value', index: produced };
    const external = externalOf.get(tensor.dataId);
    return external != null ? { kind: 'external', index: external } : null;
  };
  return { result, recording: { calls, values, externals }, refOf };
}

/** Elements up to which a tensor made before the step is baked in as a checked constant. */
export const SMALL = 16;

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function readValues(
  backend: WritableBackend,
  dataId: object,
): Float32Array | Int32Array | Uint8Array {
  return (backend.readSync(dataId) as Float32Array | Int32Array | Uint8Array).slice();
}

function copyAttrs(attrs: tf.NamedAttrMap): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(attrs)) {
    copy[k] = Array.isArray(v) ? v.map((x) => (Array.isArray(x) ? [...x] : x)) : v;
  }
  return copy;
}
