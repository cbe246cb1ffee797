/**
 * Sum's gradient as a broadcast of dy. Stock TF.js multiplies dy by `ones(x.shape)`: a
 * full-size fill and a full-size product, for every bias gradient a second-order sweep
 * differentiates (1.6M elements for a conv bias at [128,28,28,16]). tf.broadcastTo runs the
 * Tile kernel, already verified and with a reshape + sum gradient (tile.ts), so the second
 * order stays on verified ops. Same values: dy * 1 is dy exactly.
 */
import * as tf from '@tensorflow/tfjs';

let registered = false;

export function registerSumGradient(): void {
  if (registered) return;
  tf.registerGradient({
    kernelName: 'Sum',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [tf.Tensor];
      const axes = tf.util.parseAxisParam((attrs as { axis: number | number[] }).axis, x.shape);
      const expanded = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
      const grad = () => {
        const dyExpanded = tf.reshape(dy as tf.Tensor, expanded);
        // broadcastTo returns its input when nothing is broadcast (no axes reduced).
        return tf.util.arraysEqual(expanded, x.shape)
          ? dyExpanded
          : tf.broadcastTo(dyExpanded, x.shape);
      };
      return { x: grad };
    },
  });
  registered = true;
}
