/**
 * Variables a step assigns (batch norm's moving mean and variance in training mode), in step
 * graphs (see step-graph.ts).
 *
 * TF.js's `Variable.assign(value)` runs no kernel: the variable drops its data and takes the
 * value's data id. So the recording sees the new value (a kernel's output, e.g. the moving
 * mean's `moving - (moving - mean) * 0.1`) and the old one (read by that kernel) but not the
 * assignment itself, which a replayed graph would skip. Here:
 *
 *   - Capture: every `Variable.assign` during the step is watched (and done, as op by op).
 *     Before it, the variable's old data is kept (the assignment frees it, and the graph's
 *     first run, on the captured step's own inputs, still needs it). After the step, each
 *     assigned variable's final data is a recorded value: it becomes an extra graph output,
 *     after those the step returns; its old value, where the step read it, is a graph input,
 *     never a baked-in constant (small per-channel vectors would otherwise be), and its name
 *     and value are part of the capture's signature. An assignment outside the loss function
 *     (which a replay's stubbed forward pass would not see) or of a tensor made outside the
 *     step refuses the step.
 *   - Replay: the stubbed forward pass watches `assign` too, but does not assign (its values
 *     are placeholders). The variables it would assign, and with which recorded value, must be
 *     the capture's, or the step runs op by op. After the graph has run, each assigned
 *     variable takes its output: at the end of the step rather than inside the forward pass
 *     as op by op does, which gives the same values because the step's graph already reads
 *     any later use of the variable from the recorded value, not from the variable. (A loss
 *     function that reads the variable again after assigning it, e.g. a batch-norm layer
 *     called twice, reads its old data in the stub: a data-flow difference, so op by op.)
 *
 * How often: AdaHessian's step (and a first-order step) runs the loss function once: the
 * gradient and the Hessian-vector sweep differentiate the tape of that one forward pass, they
 * do not run it again (the capture refuses a step that runs it twice). So op by op assigns
 * each moving statistic once per step, and so does the replay, with the same value to float32
 * rounding (the first step of a shape, captured and run op by op, takes the graph's values
 * too, as it does for the returned tensors).
 */
import * as tf from '@tensorflow/tfjs';

type AssignFn = (this: tf.Variable, value: tf.Tensor) => void;

/**
 * Calls `seen(variable, value)` at every `Variable.assign` until the returned undo runs; the
 * assignment itself is done only when `perform` is true.
 */
export function watchAssignments(
  seen: (variable: tf.Variable, value: tf.Tensor) => void,
  perform: boolean,
): () => void {
  const proto = tf.Variable.prototype as unknown as { assign: AssignFn };
  const original = proto.assign;
  proto.assign = function (this: tf.Variable, value: tf.Tensor) {
    seen(this, value);
    if (perform) original.call(this, value);
  };
  return () => {
    proto.assign = original;
  };
}

/** One variable a captured step assigned: its final value is graph output `returned + k`. */
export interface CapturedAssignment {
  variable: tf.Variable;
  /** The variable's old data id (read by the step: a graph input) and its values. */
  oldDataId: object;
  oldValues: unknown;
}

/**
 * Watches the assignments of a step that is really run (op by op): per variable, in order of
 * first assignment, its old data id and values (kept before the assignment frees them).
 * `inForward` says whether the loss function is running; `outside` names the first variable
 * assigned while it was not.
 */
export function watchCapturedAssignments(inForward: () => boolean): {
  assignments: CapturedAssignment[];
  outside: () => string | null;
  undo: () => void;
} {
  const backend = tf.backend() as unknown as { readSync(dataId: object): unknown };
  const assignments: CapturedAssignment[] = [];
  let outside: string | null = null;
  const undo = watchAssignments((variable) => {
    if (!inForward()) outside ??= variable.name;
    if (assignments.some((a) => a.variable === variable)) return;
    const oldDataId = variable.dataId as object;
    assignments.push({ variable, oldDataId, oldValues: backend.readSync(oldDataId) });
  }, true);
  return { assignments, outside: () => outside, undo };
}

/**
 * Watches a stubbed forward pass's assignments without doing them: per variable, in order of
 * first assignment, the data id of the value it would finally hold.
 */
export function watchStubAssignments(): {
  assigned: Map<tf.Variable, object>;
  undo: () => void;
} {
  const assigned = new Map<tf.Variable, object>();
  const undo = watchAssignments((variable, value) => {
    assigned.set(variable, value.dataId as object);
  }, false);
  return { assigned, undo };
}

/** Assigns each variable its tensor (then disposed: the variable holds the data). */
export function assignAll(variables: readonly tf.Variable[], values: readonly tf.Tensor[]): void {
  variables.forEach((v, k) => {
    v.assign(values[k]!);
    values[k]!.dispose();
  });
}
