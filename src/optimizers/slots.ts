/**
 * Per-variable optimizer state ("slots", e.g. first moment m and second moment v), kept as
 * non-trainable variables and matched to variables by name, so that passing the variables in
 * another order never swaps state between them. Saved slot-major (every m, then every v) in
 * the order the variables were first seen. Restored state comes from another model, whose
 * variables have other names: an entry whose saved name matches the variable's is taken, else
 * the entry at the variable's position in the first step after the restore (as TF.js's own
 * optimizers match), and from then on it follows that variable's name.
 */
import * as tf from '@tensorflow/tfjs';
import type { NamedTensor } from './variables.js';

interface Slot {
  originalName: string;
  variable: tf.Variable;
}

interface Entry {
  /** The variable this state belongs to; null for restored state not yet matched. */
  variableName: string | null;
  slots: Map<string, Slot>;
}

export class SlotSet {
  private entries: Entry[] = [];
  private readonly byVariable = new Map<string, Entry>();

  constructor(readonly slotNames: readonly string[]) {}

  /**
   * The `slot` state of variable `like` (at position `i` of the current update), created as
   * zeros on first use.
   */
  get(slot: string, i: number, like: tf.Variable): tf.Variable {
    let entry = this.byVariable.get(like.name);
    if (entry === undefined) {
      entry = this.restoredEntryFor(like, i) ?? this.newEntry(like);
      entry.variableName = like.name;
      this.byVariable.set(like.name, entry);
    }
    const x = entry.slots.get(slot)!;
    if (!tf.util.arraysEqual(x.variable.shape, like.shape)) {
      throw new Error(
        `Optimizer state '${x.originalName}' has shape [${x.variable.shape}] but variable ` +
          `'${like.name}' has shape [${like.shape}].`,
      );
    }
    return x.variable;
  }

  /**
   * What get() would return for an existing state, without creating or matching anything:
   * null where get() would create zeros (so a refused step leaves the set as it was).
   */
  find(slot: string, i: number, like: tf.Variable): tf.Variable | null {
    const entry = this.byVariable.get(like.name) ?? this.restoredEntryFor(like, i);
    return entry?.slots.get(slot)?.variable ?? null;
  }

  private restoredEntryFor(like: tf.Variable, i: number): Entry | undefined {
    const unmatched = this.entries.filter((e) => e.variableName === null);
    if (unmatched.length === 0) return undefined;
    const first = this.slotNames[0]!;
    const sameName = unmatched.find(
      (e) => e.slots.get(first)!.originalName === `${like.name}/${first}`,
    );
    if (sameName !== undefined) return sameName;
    const atPosition = this.entries[i];
    return atPosition?.variableName === null ? atPosition : undefined;
  }

  private newEntry(like: tf.Variable): Entry {
    const entry: Entry = {
      variableName: like.name,
      slots: new Map(
        this.slotNames.map((s) => [
          s,
          {
            originalName: `${like.name}/${s}`,
            variable: tf.tidy(() => tf.zerosLike(like).variable(false)),
          },
        ]),
      ),
    };
    this.entries.push(entry);
    return entry;
  }

  named(): NamedTensor[] {
    return this.slotNames.flatMap((s) =>
      this.entries.map((e) => {
        const x = e.slots.get(s)!;
        return { name: x.originalName, tensor: x.variable };
      }),
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
    for (let j = 0; j < n; j++) {
      this.entries.push({
        variableName: null,
        slots: new Map(
          this.slotNames.map((s, k) => {
            const x = values[k * n + j]!;
            return [s, { originalName: x.name, variable: x.tensor.variable(false) }];
          }),
        ),
      });
    }
  }

  dispose(): void {
    for (const e of this.entries) for (const x of e.slots.values()) x.variable.dispose();
    this.entries = [];
    this.byVariable.clear();
  }
}
