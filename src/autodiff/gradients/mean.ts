/**
 * Mean's gradient as a broadcast of dy / n. Stock TF.js computes (dy * ones(x.shape)) / n: a
 * full-size fill, a full-size product and a full-size quotient, the first two saved on a
 * second-order tape; batch norm's moments take two means of every activation. The broadcast
 * (the Tile kernel, verified, with the reshape + sum gradient of tile.ts) is one full-size
 * tensor. Same values: (dy * 1) / n is dy / n exactly.
 */
import * as tf from '@tensorflow/tfjs';

let registered = false;

export function registerMeanGradient(): void {
  if (registered) return;
  tf.registerGradient({
    kernelName: 'Mean',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [tf.Tensor];
      const axes = tf.util.parseAxisParam((attrs as { axis: number | number[] }).axis, x.shape);
      const expanded = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
      const count = axes.reduce((n, axis) => n * x.shape[axis]!, 1);
      const grad = () => {
        const share = tf.div(tf.reshape(dy as tf.Tensor, expanded), count);
        return tf.util.arraysEqual(expanded, x.shape) ? share : tf.broadcastTo(share, x.shape);
      };
      return { x: grad };
    },
  });
  registered = true;
}
