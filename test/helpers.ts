import * as tf from '@tensorflow/tfjs';
import { useBackend, type BackendName } from '../src/backends.js';

/** The backends every test runs on; set ADAHESSIAN_TEST_BACKENDS=cpu to narrow it. */
export const TEST_BACKENDS: BackendName[] = (
  process.env.ADAHESSIAN_TEST_BACKENDS ?? 'cpu,wasm'
).split(',') as BackendName[];

export async function onBackend(name: BackendName): Promise<void> {
  await useBackend(name);
}

/** Max |a - b| over all entries. */
export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

export function maxAbs(a: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(a)).dataSync()[0]!);
}
