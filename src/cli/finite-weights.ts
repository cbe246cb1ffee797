/**
 * Whether every weight is finite after a first-order step (training.ts checks it so that no
 * checkpoint or model is written from NaN or infinite weights).
 *
 * Why not allFinite (optimizers/non-finite.ts): it launches two kernels per tensor plus the
 * sums' adds, and TF.js's per-kernel cost dominates on small models (on the demo's CNN about 7x
 * this loop's time: bench/speed/finite-check.ts, docs/PERFORMANCE.md, tenth session, engineer
 * E). Here the values are read where they are (the cpu backend hands out its own array, wasm a
 * copy) and summed as x * 0 in JS: 0 when every entry is finite, NaN otherwise, as allFinite's
 * reduction. Weights the fused updates wrote into recycled arrays (src/native/recycled-arrays.ts)
 * are read through valuesForUpdate, which does not mark them seen: this loop keeps nothing, and
 * a dataSync would keep every weight's array out of the next step's reuse.
 */
import type * as tf from '@tensorflow/tfjs';
import { valuesForUpdate } from '../native/recycled-arrays.js';

export function weightsFinite(tensors: readonly tf.Tensor[]): boolean {
  for (const t of tensors) {
    // Other tensors (int32 included) come from dataSync, as before.
    const values: Float32Array | Int32Array | Uint8Array = valuesForUpdate(t);
    // Four sums: one would wait on each add's latency.
    let a = 0;
    let b = 0;
    let c = 0;
    let d = 0;
    const n = values.length - (values.length % 4);
    for (let i = 0; i < n; i += 4) {
      a += values[i]! * 0;
      b += values[i + 1]! * 0;
      c += values[i + 2]! * 0;
      d += values[i + 3]! * 0;
    }
    for (let i = n; i < values.length; i++) a += values[i]! * 0;
    if (a + b + c + d !== 0) return false;
  }
  return true;
}
