/**
 * The sum of same-shape tensors, as tf.addN but never more than 7 inputs to one kernel call:
 * tfjs-backend-webgpu 4.22 compiles AddN as one shader with a storage buffer per input, and past
 * the adapter's limit (8 buffers with the output, on SwiftShader and many GPUs) it silently
 * returns a stale result (seen: 8 sums of 1..8 times 100 gave 2800, not 3600). The running sum
 * keeps addN's left-to-right order, so on cpu and wasm the result is addN's, bit for bit.
 */
import * as tf from '@tensorflow/tfjs';

const MAX_ADDN_INPUTS = 7;

export function addAll<T extends tf.Tensor>(tensors: T[]): T {
  if (tensors.length === 0) throw new Error('addAll: no tensors to add.');
  // No tidy of its own: the partial sums may be on a gradient tape, and the caller's tidy frees them.
  let sum = tf.addN(tensors.slice(0, MAX_ADDN_INPUTS));
  for (let i = MAX_ADDN_INPUTS; i < tensors.length; i += MAX_ADDN_INPUTS - 1) {
    sum = tf.addN([sum, ...tensors.slice(i, i + MAX_ADDN_INPUTS - 1)]);
  }
  return sum as T;
}
