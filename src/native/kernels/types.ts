/**
 * What a native kernel is: for one TF.js kernel name, a planner that turns a call's inputs
 * and attributes into a small ONNX graph (cached by `key`) or returns null when it does not
 * handle the call, so that TF.js's own kernel runs instead.
 */
import type * as tf from '@tensorflow/tfjs';
import type { OnnxGraph } from '../onnx-model.js';

export interface NativePlan {
  /** Identifies the graph: same key, same graph (op, shapes and attributes). */
  key: string;
  build: () => OnnxGraph;
  /** The TF.js tensors fed to the graph's inputs, in order. */
  inputs: tf.TensorInfo[];
  /** The graph's inputs may see an input with another shape (a view of the same data). */
  inputShapes: number[][];
  outShape: number[];
}

export interface NativeKernel {
  kernelName: string;
  /** `threads`: ONNX Runtime's intra-op threads the plan's graph will run on. */
  plan(
    inputs: tf.NamedTensorInfoMap,
    attrs: tf.NamedAttrMap,
    context?: { threads: number },
  ): NativePlan | null;
  /**
   * One-input kernels whose result a training step asks for twice on the same input (Step:
   * relu's gradient mask, in the gradient and again in the second-order sweep): a repeated
   * call returns the first call's output, shared as Identity shares data.
   */
  memoize?: boolean;
  /**
   * Kernels whose output may be deferred (computed on first read, see KernelBuffers.deferred):
   * what fusing kernels get to know about such an output instead of its values; undefined for
   * calls that are not worth deferring.
   */
  defer?: (inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap, plan: NativePlan) => unknown;
}

/**
 * A kernel computed directly in typed-array JS (where ONNX has no operator); it returns
 * null for calls it does not handle.
 */
export interface DirectKernel {
  kernelName: string;
  /** As NativeKernel's: a repeated call on the same (single) input shares the first output. */
  memoize?: boolean;
  run(
    inputs: tf.NamedTensorInfoMap,
    attrs: tf.NamedAttrMap,
    backend: tf.KernelBackend,
    buffers: KernelBuffers,
  ): tf.TensorInfo | null;
}

/** How a direct kernel reads its inputs and gets its output array (see buffer-pool.ts). */
export interface KernelBuffers {
  /** An input's values, without marking a pooled array as seen. */
  read(backend: tf.KernelBackend, dataId: object): Float32Array;
  /** A zeroed output array. */
  zeros(length: number): Float32Array;
  /** An output array whose contents are undefined (the kernel writes every element). */
  take(length: number): Float32Array;
  /** The tensor for an output array, registered for reuse once it is disposed. */
  output(backend: tf.KernelBackend, shape: number[], values: Float32Array): tf.TensorInfo;
  /**
   * A tensor whose values `fill` computes into its (pooled) array on its first read, keeping
   * the `inputs` it reads alive until then (or until it is disposed unread); `info` tells
   * fusing kernels what it is. Null where deferral is not available: compute now instead.
   */
  deferred(
    backend: tf.KernelBackend,
    shape: number[],
    fill: (values: Float32Array) => void,
    inputs: tf.TensorInfo[],
    info: unknown,
  ): tf.TensorInfo | null;
  /** A deferred output's info while it is not computed yet. */
  pendingInfo(dataId: object): unknown;
  /** Counts a call that folded a deferred input into its own work (nativeKernelStatus). */
  countFused(): void;
  /** Runs a native (ONNX) kernel on these inputs; null where it does not handle them. */
  native(
    kernel: NativeKernel,
    inputs: tf.NamedTensorInfoMap,
    attrs: tf.NamedAttrMap,
    backend: tf.KernelBackend,
  ): tf.TensorInfo | null;
}

export const ints = (value: readonly number[]) => ({ kind: 'ints' as const, value });
export const int = (value: number) => ({ kind: 'int' as const, value });
export const float = (value: number) => ({ kind: 'float' as const, value });

/** True when every given tensor is float32 (the only dtype the native graphs take). */
export function allFloat32(...infos: (tf.TensorInfo | undefined)[]): boolean {
  return infos.every((t) => t == null || t.dtype === 'float32');
}
