/**
 * Tile's gradient as one reshape and one sum. Stock TF.js sums one slice per repetition
 * (1024 slices for a [1,1,64] tensor tiled to [32,32,64], as tf.layers' layer normalization
 * does with its gamma and beta), and the second-order sweep then differentiates every slice
 * into a full-size pad: slow, and with wasm's heap a crash. Output index q*s + p of each
 * axis (repetition q, position p) is element [q, p] of dy reshaped to [r0, s0, r1, s1, ...],
 * so summing the repetition axes gives the gradient, built from taped, verified ops.
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
      const split: number[] = [];
      reps.forEach((r, i) => split.push(r, x.shape[i]!));
      const repAxes = reps.map((_, i) => 2 * i);
      return { x: () => tf.reshape(tf.sum(tf.reshape(dy as tf.Tensor, split), repAxes), x.shape) };
    },
  });
  registered = true;
}
