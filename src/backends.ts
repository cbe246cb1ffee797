/**
 * Choosing a TensorFlow.js backend by name. 'cpu' and 'wasm' always work; 'tensorflow'
 * needs the optional @tensorflow/tfjs-node package, which we never require.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

export type BackendName = 'cpu' | 'wasm' | 'tensorflow';
export const BACKENDS: readonly BackendName[] = ['cpu', 'wasm', 'tensorflow'];

/** Switches to `name`, loading @tensorflow/tfjs-node first for 'tensorflow'. */
export async function useBackend(name: BackendName): Promise<void> {
  if (!BACKENDS.includes(name)) {
    throw new Error(`Unknown backend '${name}'; expected one of ${BACKENDS.join(', ')}.`);
  }
  if (name === 'tensorflow' && tf.findBackend('tensorflow') == null) {
    const moduleName = '@tensorflow/tfjs-node';
    try {
      await import(/* @vite-ignore */ moduleName);
    } catch {
      throw new Error(
        "Backend 'tensorflow' needs the optional package @tensorflow/tfjs-node@4.22.0; install it or use 'cpu' or 'wasm'.",
      );
    }
  }
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`TensorFlow.js could not initialise the '${name}' backend.`);
  await tf.ready();
}

/** The backends that can be used in this process (tensorflow only when tfjs-node loads). */
export async function availableBackends(): Promise<BackendName[]> {
  const found: BackendName[] = ['cpu', 'wasm'];
  try {
    await import(/* @vite-ignore */ '@tensorflow/tfjs-node' as string);
    found.push('tensorflow');
  } catch {
    // optional
  }
  return found;
}
