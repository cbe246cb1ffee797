/**
 * Backend choice in the page's worker: cpu and wasm from the library (wasm's binaries are
 * served as assets of the site), webgl from @tensorflow/tfjs, webgpu loaded on demand.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { BACKENDS, useBackend, type BackendName } from '../../src/index.js';
import wasmUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimdUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreadedUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';

export const PLAYGROUND_BACKENDS = ['wasm', 'cpu', 'webgl', 'webgpu'] as const;
export type PlaygroundBackend = (typeof PLAYGROUND_BACKENDS)[number];

setWasmPaths({
  'tfjs-backend-wasm.wasm': wasmUrl,
  'tfjs-backend-wasm-simd.wasm': wasmSimdUrl,
  'tfjs-backend-wasm-threaded-simd.wasm': wasmThreadedUrl,
});

/** Switches to `name` through the library where it knows the backend, else through TF.js. */
export async function selectBackend(name: string): Promise<void> {
  if (!(PLAYGROUND_BACKENDS as readonly string[]).includes(name)) {
    throw new Error(
      `Unknown backend '${name}'; expected one of ${PLAYGROUND_BACKENDS.join(', ')}.`,
    );
  }
  if (name === 'webgpu' && tf.findBackend('webgpu') == null) {
    if (!('gpu' in navigator))
      throw new Error('This browser has no WebGPU (navigator.gpu is missing).');
    await import('@tensorflow/tfjs-backend-webgpu');
  }
  if ((BACKENDS as readonly string[]).includes(name)) {
    await useBackend(name as BackendName);
    return;
  }
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
  } catch {
    ok = false;
  }
  if (!ok)
    throw new Error(`TensorFlow.js could not initialise the '${name}' backend in this browser.`);
  await tf.ready();
}
