/**
 * Tensors that escape the loss function (see step-graph.ts): a tensor the loss function makes
 * and that is still alive after the step (kept with tf.keep, e.g. a count of correct
 * predictions; or a tensor the step's tidy never owned). On a replay every kernel of the loss
 * function is stubbed, so such a tensor would be an empty placeholder.
 *
 * How:
 *   - Capture: every tensor made while the loss function runs is noted in order (the engine's
 *     trackTensor). Those alive once the step has run, but for the step's own outputs and the
 *     loss, escape: each one a kernel made becomes an extra graph output (after the assigned
 *     variables' new values); one made in JS holds real values and needs nothing.
 *   - Replay: the stub notes its tensors the same way. After the stubbed loss function, every
 *     placeholder still alive must be an escape of the capture (the same place in that order,
 *     the same recorded value); the graph's outputs are then written into those placeholders.
 *   - A stub that stops (its forward pass differs) or finds a placeholder alive that the capture
 *     did not: the step runs op by op, and the placeholders left alive are poisoned: reading one
 *     throws one line saying so, never garbage.
 */
import * as tf from '@tensorflow/tfjs';
import type { StepDtype } from './capture.js';

interface TrackingEngine {
  trackTensor(t: tf.Tensor, backend: unknown): void;
}

interface MovableBackend {
  move(dataId: object, values: unknown, shape: number[], dtype: string, refCount: number): void;
  refCount(dataId: object): number;
}

/** Tensors made (in order) while `active()` holds, until `undo`. */
export function watchMadeTensors(active: () => boolean): { made: tf.Tensor[]; undo: () => void } {
  const engine = tf.engine() as unknown as TrackingEngine;
  const made: tf.Tensor[] = [];
  const track = engine.trackTensor;
  engine.trackTensor = function (this: TrackingEngine, t: tf.Tensor, backend: unknown) {
    if (active() && !(t instanceof tf.Variable)) made.push(t);
    return track.call(this, t, backend);
  };
  return {
    made,
    undo: () => {
      engine.trackTensor = track;
    },
  };
}

/** One escaping tensor of a capture: where it was made, and which graph output it is. */
export interface Escape {
  /** Its place among the tensors the loss function made. */
  order: number;
  /** Its graph output (index into the capture's outputs). */
  output: number;
}

/** Indices into `made` of those still alive, but for `except`. */
export function aliveAfter(made: readonly tf.Tensor[], except: readonly tf.Tensor[]): number[] {
  const skip = new Set(except);
  // A plain loop: a step makes thousands of tensors, and this runs on every replay.
  const alive: number[] = [];
  for (let i = 0; i < made.length; i++) {
    const t = made[i]!;
    if (!t.isDisposed && !skip.has(t)) alive.push(i);
  }
  return alive;
}

/** Writes `values` into existing backend data (a placeholder, or a real tensor's data). */
export function fillData(dataId: object, values: tf.Tensor): void {
  const backend = tf.backend() as unknown as MovableBackend;
  const data = values.dataSync().slice();
  backend.move(dataId, data, [...values.shape], values.dtype, backend.refCount(dataId));
}

/** Makes reading a placeholder throw one line, instead of returning no or stale values. */
export function poison(dataId: object, shape: number[], dtype: StepDtype): void {
  const backend = tf.backend() as unknown as MovableBackend;
  const message =
    'step graphs: this tensor was kept by the loss function during a replay that fell back to op by op; it holds no values (keep the one made by the step that ran op by op)';
  const values = new Proxy(dtype === 'float32' ? new Float32Array(0) : new Int32Array(0), {
    get() {
      throw new Error(message);
    },
  });
  backend.move(dataId, values, shape, dtype, backend.refCount(dataId));
}
