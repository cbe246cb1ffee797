/**
 * Backend choice in the page's worker, through the library's useBackend: cpu, wasm (its
 * binaries are served as assets of the site), webgl (registered by @tensorflow/tfjs) and
 * webgpu (@tensorflow/tfjs-backend-webgpu, imported on demand).
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { useBackend } from '../../src/index.js';
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

/** Switches to `name` (loading the webgpu backend first when it is asked for). */
export async function selectBackend(name: string): Promise<void> {
  if (!(PLAYGROUND_BACKENDS as readonly string[]).includes(name)) {
    throw new Error(
      `Unknown backend '${name}'; expected one of ${PLAYGROUND_BACKENDS.join(', ')}.`,
    );
  }
  if (name === 'webgpu' && tf.findBackendFactory('webgpu') == null) {
    if (!('gpu' in navigator))
      throw new Error('This browser has no WebGPU (navigator.gpu is missing).');
    await import('@tensorflow/tfjs-backend-webgpu');
  }
  // The library's useBackend names the problem in one line (not registered, failed to start);
  // Hessian products on a backend it has not verified are refused later, by gradAndHvp.
  await useBackend(name);
}
