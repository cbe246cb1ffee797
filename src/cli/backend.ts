/** Choosing the TF.js backend (and optionally the native kernels) for a command. */
import * as tf from '@tensorflow/tfjs';
import { BACKENDS, useBackend, type BackendName } from '../backends.js';
import { enableNativeKernels, nativeKernelStatus } from '../native/index.js';
import { CliUsageError } from './errors.js';

export const CLI_BACKENDS = BACKENDS;

/**
 * Switches to `backend`; with `native`, routes its heavy kernels through ONNX Runtime
 * (src/native). Errors say what is missing.
 */
export async function prepareBackend(backend: BackendName, native = false): Promise<void> {
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
  if (native) {
    if (backend === 'tensorflow') {
      throw new CliUsageError(
        '--native applies to the cpu and wasm backends (tensorflow is native already).',
      );
    }
    const current = nativeKernelStatus();
    if (!current.enabled || !current.backends.includes(backend)) {
      const status = enableNativeKernels({ backends: [backend] });
      if (!status.enabled) throw new CliUsageError(`--native: ${status.reason}`);
    }
  }
}
