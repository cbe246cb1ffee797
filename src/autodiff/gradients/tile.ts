/**
 * Tile's gradient as one reshape and one sum per tiled axis. Stock TF.js sums one slice per repetition
 * (1024 slices for a [1,1,64] tensor tiled to [32,32,64], as tf.layers' layer normalization
 * does with its gamma and beta), and the second-order sweep then differentiates every slice
 * into a full-size pad: slow, and with wasm's heap a crash. Output index q*s + p of an axis
 * (repetition q, position p) is element [q, p] of that axis split in two, so each tiled axis is
 * summed over its repetitions: dy reshaped to [before, r, s * after], summed over axis 1. One
 * rank-3 reduction per tiled axis, never more: webgl and webgpu cannot transpose above rank 6,
 * so a single reduction over a rank-2n split (rank 8 for a rank-4 tile, as tf.layers' batch
 * normalization takes) fails there. Built from taped, verified ops (reshape, sum).
 */
import * as tf from '@tensorflow/tfjs';

let registered = false;

export function registerTileGradient(): void {
  if (registered) return;
  tf.registerGradient({
    kernelName: 'Tile',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [tf.Tensor];
      const reps = (attrs as { reps: number[] }).reps;
      return { x: () => sumRepetitions(dy as tf.Tensor, x.shape, reps) };
    },
  });
  registered = true;
}

/** dy of shape [r0*s0, r1*s1, ...] summed over the repetitions r_i, to shape s. */
function sumRepetitions(dy: tf.Tensor, shape: number[], reps: number[]): tf.Tensor {
  let g = dy;
  const current = [...dy.shape];
  reps.forEach((r, i) => {
    if (r === 1) return;
    const before = current.slice(0, i).reduce((a, b) => a * b, 1);
    const after = current.slice(i + 1).reduce((a, b) => a * b, 1);
    g = tf.sum(tf.reshape(g, [before, r, shape[i]! * after]), 1);
    current[i] = shape[i]!;
  });
  return tf.reshape(g, shape);
}
