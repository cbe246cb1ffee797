import * as tf from '@tensorflow/tfjs';

/** Registers a copy of the cpu backend under `name`: a backend that adahessian knows nothing of. */
export function registerCpuCopy(name: string): void {
  if (tf.findBackendFactory(name) != null) return;
  const Cpu = tf.findBackend('cpu')!.constructor as new () => tf.KernelBackend;
  tf.registerBackend(name, () => new Cpu(), -1);
  for (const k of tf.getKernelsForBackend('cpu')) tf.registerKernel({ ...k, backendName: name });
}
