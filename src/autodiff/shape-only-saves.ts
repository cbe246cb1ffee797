/**
 * Tape memory: several kernels save an input only to read its shape in their gradient (Add and
 * Sub for broadcasting, Reshape; Sum, Mean and Tile with the gradients of this package). On a
 * second-order tape each such save keeps a full-size tensor alive until the sweep is over
 * (about a third of a ResNet-20 tape's saved bytes). As each such node is recorded, its saved
 * tensor is swapped for a record of the shape and dtype and the tensor released.
 *
 * Only while the gradient registered for the kernel is the one checked to read nothing but the
 * shapes (captured at install); a gradient registered later by someone else keeps its tensors.
 * A stand-in has no data: a gradient that tried to read it would fail loudly, not compute with
 * garbage.
 */
import * as tf from '@tensorflow/tfjs';
import { privateEngine } from './engine.js';

/** Kernels whose gradient reads only the shapes of the saved inputs at these positions. */
const SHAPE_ONLY_SAVES: Readonly<Record<string, readonly number[]>> = {
  Add: [0, 1],
  Sub: [0, 1],
  Reshape: [0],
  Sum: [0],
  Mean: [0],
  Tile: [0],
};

let installed = false;

/** Installs the swap; call after every gradient it relies on is registered. Idempotent. */
export function installShapeOnlySaves(): void {
  if (installed) return;
  const checked = new Map<string, unknown>();
  for (const name of Object.keys(SHAPE_ONLY_SAVES)) {
    const config = tf.getGradient(name);
    if (config != null) checked.set(name, config.gradFunc);
  }
  const engine = privateEngine();
  const original = engine.addTapeNode;
  engine.addTapeNode = function (this: typeof engine, ...args: Parameters<typeof original>) {
    original.apply(this, args);
    const [kernelName, , , , saved] = args;
    const positions = SHAPE_ONLY_SAVES[kernelName];
    if (positions == null || saved == null) return;
    if (tf.getGradient(kernelName)?.gradFunc !== checked.get(kernelName)) return;
    for (const i of positions) {
      const t = saved[i];
      if (t instanceof tf.Tensor) {
        saved[i] = shapeRecord(t);
        t.dispose();
      }
    }
  };
  installed = true;
}

/** What a shape-only gradient reads of a saved tensor; disposing it is a no-op. */
function shapeRecord(t: tf.Tensor): tf.Tensor {
  const record = {
    id: t.id,
    shape: t.shape,
    dtype: t.dtype,
    rank: t.rank,
    size: t.size,
    kept: true,
    isDisposed: false,
    dispose: () => {},
  };
  return record as unknown as tf.Tensor;
}
