/** Choosing the TF.js backend (and optionally the native kernels) for a command. */
import * as tf from '@tensorflow/tfjs';
import { BACKENDS, useBackend, type BackendName } from '../backends.js';
import {
  disableNativeKernels,
  enableNativeKernels,
  nativeKernelStatus,
  useFastestBackend,
} from '../native/index.js';
import { CliUsageError } from './errors.js';
import { note, type CliIo } from './output.js';

export const CLI_BACKENDS = BACKENDS;

/** The path a command runs on. */
export interface BackendChoice {
  backend: BackendName;
  native: boolean;
}

/**
 * Without `backend`: the fastest path available, cpu with the native kernels (src/native) when
 * onnxruntime-node loads, else wasm with one note saying why (`native: false` goes straight to
 * wasm; `native: true` insists on the native kernels). With `backend`: that backend, the native
 * kernels turned on (`true`), off (`false`) or left as they are (undefined). Errors say what is
 * missing.
 */
export async function prepareBackend(
  backend: BackendName | undefined,
  native?: boolean,
  io?: CliIo,
): Promise<BackendChoice> {
  if (backend === undefined) {
    if (native === false) return prepareBackend('wasm', false);
    if (native === true) return prepareBackend('cpu', true);
    const fastest = await useFastestBackend();
    if (!fastest.native && io !== undefined) {
      note(io, `Running on wasm, without the native kernels: ${fastest.reason}`);
    }
    return { backend: fastest.backend, native: fastest.native };
  }
  if (!BACKENDS.includes(backend)) {
    throw new CliUsageError(
      `--backend '${backend}' is unknown; expected one of ${BACKENDS.join(', ')}.`,
    );
  }
  if (tf.getBackend() !== backend) {
    try {
      await useBackend(backend);
    } catch (e) {
      throw new CliUsageError(`--backend ${backend}: ${(e as Error).message}`);
    }
  }
  const current = nativeKernelStatus();
  const nativeHere = current.enabled && current.backends.includes(backend);
  if (native === true && !nativeHere) {
    if (backend === 'tensorflow') {
      throw new CliUsageError(
        '--native applies to the cpu and wasm backends (tensorflow is native already).',
      );
    }
    const status = enableNativeKernels({ backends: [backend] });
    if (!status.enabled) throw new CliUsageError(`--native: ${status.reason}`);
    return { backend, native: true };
  }
  if (native === false && current.enabled) disableNativeKernels();
  return { backend, native: native === false ? false : nativeHere };
}
