/**
 * Backend-neutral access to tensor data from inside a kernelFunc. Kernels here read their
 * inputs as typed arrays, write results through backend.write, and run other kernels of
 * the same backend by calling their kernelFunc directly (no engine tensors, so nothing is
 * tracked or taped); every intermediate they create they dispose with `disposeInfo`.
 */
import * as tf from '@tensorflow/tfjs';

export type TypedValues = Float32Array | Int32Array | Uint8Array;

export function asBackend(backend: unknown): tf.KernelBackend {
  return backend as tf.KernelBackend;
}

/** The values of `info`; on cpu a view of its storage, on wasm a copy off the heap. */
export function readValues(backend: tf.KernelBackend, info: tf.TensorInfo): TypedValues {
  return backend.readSync(info.dataId) as TypedValues;
}

/** A new backend tensor holding `values` (cpu keeps the array, wasm copies it to its heap). */
export function writeTensor(
  backend: tf.KernelBackend,
  shape: number[],
  dtype: tf.DataType,
  values: TypedValues,
): tf.TensorInfo {
  return { dataId: backend.write(values, shape, dtype), shape, dtype };
}

export function disposeInfo(backend: tf.KernelBackend, info: tf.TensorInfo): void {
  backend.disposeData(info.dataId);
}

/** Runs `kernelName` as registered for `backendName`, without the engine. */
export function runBackendKernel(
  kernelName: string,
  backendName: string,
  backend: tf.KernelBackend,
  inputs: tf.NamedTensorInfoMap,
  attrs: tf.NamedAttrMap = {},
): tf.TensorInfo {
  const config = tf.getKernel(kernelName, backendName);
  if (config == null) {
    throw new Error(`Kernel '${kernelName}' is not registered for backend '${backendName}'.`);
  }
  const out = config.kernelFunc({ inputs, backend, attrs });
  if (Array.isArray(out)) {
    throw new Error(`Kernel '${kernelName}' returned several outputs where one was expected.`);
  }
  return out;
}

/** The same data viewed with another shape (no copy; caller must not dispose it separately). */
export function viewAs(info: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  return { dataId: info.dataId, shape, dtype: info.dtype };
}
