/**
 * useFastestBackend(): the path the CLI takes by default, as one call for library users on Node:
 * the cpu backend with the native kernels when onnxruntime-node loads, else wasm (TF.js's
 * fastest pure-JS path here), with the reason.
 */
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../backends.js';
import { enableNativeKernels, nativeKernelStatus, type NativeKernelOptions } from './enable.js';

export interface FastestBackend {
  backend: 'cpu' | 'wasm';
  /** The native kernels are on (only with backend 'cpu'). */
  native: boolean;
  /** Why the native kernels are off ('' when they are on). */
  reason: string;
}

/**
 * Switches to cpu + native kernels, or to wasm when onnxruntime-node cannot be loaded. Keeps
 * native kernels already enabled for cpu (their compiled graphs) rather than re-installing.
 */
export async function useFastestBackend(
  options: Omit<NativeKernelOptions, 'backends'> = {},
): Promise<FastestBackend> {
  const current = nativeKernelStatus();
  if (!(current.enabled && current.backends.includes('cpu'))) {
    const status = enableNativeKernels({ ...options, backends: ['cpu'] });
    if (!status.enabled) {
      if (tf.getBackend() !== 'wasm') await useBackend('wasm');
      return { backend: 'wasm', native: false, reason: status.reason };
    }
  }
  if (tf.getBackend() !== 'cpu') await useBackend('cpu');
  return { backend: 'cpu', native: true, reason: '' };
}
