/**
 * Per-variable optimizer state ("slots", e.g. first moment m and second moment v), kept as
 * non-trainable variables and keyed by the variable's position in the update, as TF.js's own
 * optimizers do, so that state saved from one model restores into a fresh copy of it (whose
 * variables have different names). Saved slot-major: every m, then every v.
 */
import * as tf from '@tensorflow/tfjs';
import type { NamedTensor } from './variables.js';

interface Slot {
  originalName: string;
  variable: tf.Variable;
}

export class SlotSet {
  private readonly slots: Map<string, Slot[]>;

  constructor(readonly slotNames: readonly string[]) {
    this.slots = new Map(slotNames.map((s) => [s, []]));
  }

  /** The `slot` state of the i-th variable, created as zeros on first use. */
  get(slot: string, i: number, like: tf.Variable): tf.Variable {
    const list = this.slots.get(slot)!;
    if (list[i] == null) {
      list[i] = {
        originalName: `${like.name}/${slot}`,
        variable: tf.tidy(() => tf.zerosLike(like).variable(false)),
      };
    } else if (!tf.util.arraysEqual(list[i]!.variable.shape, like.shape)) {
      throw new Error(
        `Optimizer state '${list[i]!.originalName}' has shape [${list[i]!.variable.shape}] but variable ` +
          `'${like.name}' at the same position has shape [${like.shape}]: the variable list changed between steps.`,
      );
    }
    return list[i]!.variable;
  }

  named(): NamedTensor[] {
    return this.slotNames.flatMap((s) =>
      this.slots.get(s)!.map((x) => ({ name: x.originalName, tensor: x.variable })),
    );
  }

  /** Replaces all state by copies of `values` (as returned by named()). */
  restore(values: readonly NamedTensor[]): void {
    if (values.length % this.slotNames.length !== 0) {
      throw new Error(
        `Expected a multiple of ${this.slotNames.length} state tensors (${this.slotNames.join(', ')} per variable), got ${values.length}.`,
      );
    }
    const n = values.length / this.slotNames.length;
    this.dispose();
    this.slotNames.forEach((s, k) => {
      this.slots.set(
        s,
        values.slice(k * n, (k + 1) * n).map((x) => ({
          originalName: x.name,
          variable: x.tensor.variable(false),
        })),
      );
    });
  }

  dispose(): void {
    for (const list of this.slots.values()) for (const x of list) x?.variable.dispose();
    for (const s of this.slotNames) this.slots.set(s, []);
  }
}
