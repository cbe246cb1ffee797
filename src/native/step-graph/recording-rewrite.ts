/**
 * The machinery shared by the hand-written gradients of first-order step graphs
 * (layer-norm-grad.ts, gelu-grad.ts): both find a forward pattern in a recording, the gradient
 * cone TF.js differentiated it into, and the chain of Adds that sums x's gradient; then splice
 * hand-written calls into a copy of the recording. Here:
 *   - indexRecording: aliases (Identity, Reshape, same-dtype Cast) followed to the value they
 *     share data with, each value's producer and non-alias readers, scalar constants;
 *   - matchEach: one match per anchor call, refusals collected (Refuse/check) with their reason;
 *   - gradientCone: the calls after the forward pattern that read dy or the cone, and otherwise
 *     only forward values, what is computed from those alone, and scalar constants;
 *   - coneExits, gradientChain: what leaves the cone, and the chain of Adds reading its terms;
 *   - RecordingSplice: the new recording, with calls inserted before replaced ones, and per new
 *     call the given call it stands for (`origin`, for profiles).
 * The recording given is never changed.
 */
import type { GraphOutput } from './build.js';
import type {
  ExternalValue,
  Recording,
  RecordedCall,
  RecordedInput,
  RecordedValue,
  ValueRef,
} from './capture.js';

export interface RecordingRewrite {
  recording: Recording;
  /** Per call of the new recording, the call of the given one it stands for (profiles). */
  origin: number[];
  /** Patterns whose gradient was replaced. */
  rewritten: number;
  /** Why each other anchor call was left alone. */
  refused: string[];
}

/** A value by its ref: `v<index>` (a recorded value) or `e<index>` (an external). */
export type Key = string;
export const keyOf = (ref: ValueRef): Key =>
  ref.kind === 'value' ? `v${ref.index}` : `e${ref.index}`;
export const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** A pattern not matched: the plain translation stays. */
export class Refuse extends Error {}
export function check(ok: boolean, why: string): asserts ok {
  if (!ok) throw new Refuse(why);
}

export interface RecordingIndex {
  calls: RecordedCall[];
  values: RecordedValue[];
  externals: ExternalValue[];
  /** A call returning its input's data (a bool -> float32 Cast too, but that is a new value). */
  isAlias(c: RecordedCall): boolean;
  /** The non-alias call making each value. */
  producer: Map<Key, number>;
  /** Non-alias readers of each value (by root), in order. */
  readers: Map<Key, number[]>;
  /** The graph's outputs (by root). */
  outputKeys: Set<Key>;
  /** The value an alias shares data with (the ref itself if none). */
  rootRef(ref: ValueRef): ValueRef;
  canon(ref: ValueRef): Key;
  shapeOfKey(k: Key): number[];
  /** A float32 scalar made during the step (a baked constant), or null. */
  scalarOf(k: Key): number | null;
  /** A scalar made during the step, of any dtype. */
  isScalarConstant(k: Key): boolean;
  inputNamed(c: RecordedCall, name: string): RecordedInput;
  /** The call making `k`, refused unless it is a `kernel`. */
  producerOf(k: Key, kernel: string): RecordedCall;
  /** The one non-alias reader of `k` with this kernel and another input passing `isOther`. */
  binaryReader(k: Key, kernel: string, isOther: (o: Key) => boolean): number;
}

export function indexRecording(
  recording: Recording,
  outputs: readonly GraphOutput[],
): RecordingIndex {
  const { calls, values, externals } = recording;
  const isAlias = (c: RecordedCall) =>
    c.outputs.length === 1 &&
    c.aliases[0] === 0 &&
    c.inputs[0]?.dtype === values[c.outputs[0]!]!.dtype;
  const root = new Map<Key, ValueRef>();
  const producer = new Map<Key, number>();
  calls.forEach((c, i) => {
    if (isAlias(c)) {
      const from = c.inputs[0]!.ref;
      root.set(`v${c.outputs[0]}`, root.get(keyOf(from)) ?? from);
    } else c.outputs.forEach((v) => producer.set(`v${v}`, i));
  });
  const rootRef = (ref: ValueRef): ValueRef => root.get(keyOf(ref)) ?? ref;
  const canon = (ref: ValueRef): Key => keyOf(rootRef(ref));
  const readers = new Map<Key, number[]>();
  calls.forEach((c, i) => {
    if (isAlias(c)) return;
    for (const input of c.inputs) {
      const k = canon(input.ref);
      let list = readers.get(k);
      if (list == null) readers.set(k, (list = []));
      if (list.at(-1) !== i) list.push(i);
    }
  });
  const madeScalar = (k: Key) => {
    if (k[0] !== 'e') return null;
    const ext = externals[Number(k.slice(1))]!;
    return ext.origin === 'made' && ext.values != null && ext.values.length === 1 ? ext : null;
  };
  const inputNamed = (c: RecordedCall, name: string) => {
    const input = c.inputs.find((i) => i.name === name);
    check(input != null, `${c.kernelName} without input ${name}`);
    return input;
  };
  return {
    calls,
    values,
    externals,
    isAlias,
    producer,
    readers,
    outputKeys: new Set(outputs.map((o) => canon(o.ref))),
    rootRef,
    canon,
    shapeOfKey: (k) =>
      k[0] === 'v' ? values[Number(k.slice(1))]!.shape : externals[Number(k.slice(1))]!.shape,
    scalarOf: (k) => {
      const ext = madeScalar(k);
      return ext?.dtype === 'float32' ? ext.values![0]! : null;
    },
    isScalarConstant: (k) => madeScalar(k) != null,
    inputNamed,
    producerOf: (k, kernel) => {
      const p = producer.get(k);
      check(p != null && calls[p]!.kernelName === kernel, `${k} is not a ${kernel}`);
      return calls[p]!;
    },
    binaryReader: (k, kernel, isOther) => {
      const found = (readers.get(k) ?? []).filter((r) => {
        const c = calls[r]!;
        if (c.kernelName !== kernel || c.inputs.length !== 2) return false;
        const [a, b] = c.inputs.map((q) => canon(q.ref));
        return (a === k && isOther(b!)) || (b === k && isOther(a!));
      });
      check(found.length === 1, `${found.length} ${kernel} readers`);
      return found[0]!;
    },
  };
}

/**
 * `match` tried at each call of `kernelName`; a Refuse is recorded as why. `match` is given the
 * calls earlier matches replace (`claims`), so that matches do not overlap.
 */
export function matchEach<M>(
  calls: readonly RecordedCall[],
  kernelName: string,
  match: (call: number, claimed: ReadonlySet<number>) => M,
  claims: (m: M) => readonly number[],
): { matches: M[]; refused: string[] } {
  const claimed = new Set<number>();
  const matches: M[] = [];
  const refused: string[] = [];
  calls.forEach((c, i) => {
    if (c.kernelName !== kernelName) return;
    try {
      const m = match(i, claimed);
      claims(m).forEach((call) => claimed.add(call));
      matches.push(m);
    } catch (e) {
      if (!(e instanceof Refuse)) throw e;
      refused.push(`${kernelName} call ${i}: ${e.message}`);
    }
  });
  return { matches, refused };
}

export interface GradientCone {
  /** Values computed after the pattern from forward values alone, with the call making each. */
  derived: Map<Key, number>;
  /** The cone's values and calls (in order). */
  values: Set<Key>;
  calls: number[];
  /** Per cone value, whether it reads forward values (directly or through the cone). */
  readsForward: Map<Key, boolean>;
}

/**
 * The gradient cone of dy after call `after`: the calls that read dy or the cone, and otherwise
 * only `forward` values, what is computed from those alone, and scalar constants (`isConstant`).
 * A full-size (`n` elements) Add is x's gradient accumulating, not the cone.
 */
export function gradientCone(
  index: RecordingIndex,
  after: number,
  dy: Key,
  forward: ReadonlySet<Key>,
  n: number,
  isConstant: (k: Key) => boolean,
): GradientCone {
  const { calls, values, canon } = index;
  const derived = new Map<Key, number>();
  const cone = new Set<Key>();
  const coneCalls: number[] = [];
  const readsForward = new Map<Key, boolean>();
  for (let i = after + 1; i < calls.length; i++) {
    const c = calls[i]!;
    if (index.isAlias(c) || c.outputs.length !== 1) continue;
    const ins = c.inputs.map((q) => canon(q.ref));
    const forwardOnly = (k: Key) => forward.has(k) || derived.has(k) || isConstant(k);
    if (ins.every(forwardOnly)) {
      derived.set(`v${c.outputs[0]}`, i);
      continue;
    }
    const fromDy = ins.some((k) => k === dy || cone.has(k));
    const inCone = ins.every((k) => forwardOnly(k) || k === dy || cone.has(k));
    const accumulates = c.kernelName === 'Add' && sizeOf(values[c.outputs[0]!]!.shape) === n;
    if (!fromDy || !inCone || accumulates) continue;
    const out = `v${c.outputs[0]}`;
    cone.add(out);
    coneCalls.push(i);
    readsForward.set(
      out,
      ins.some((k) => forward.has(k) || derived.has(k) || readsForward.get(k) === true),
    );
  }
  return { derived, values: cone, calls: coneCalls, readsForward };
}

/** The cone's values read outside it (or graph outputs), with those readers. */
export function coneExits(index: RecordingIndex, cone: GradientCone): Map<Key, number[]> {
  const coneCallSet = new Set(cone.calls);
  const exits = new Map<Key, number[]>();
  for (const k of cone.values) {
    const out = (index.readers.get(k) ?? []).filter((r) => !coneCallSet.has(r));
    if (out.length > 0 || index.outputKeys.has(k)) exits.set(k, out);
  }
  return exits;
}

/**
 * x's gradient: the `terms` (full-size, `n` elements, each read only by one Add) read by one
 * chain of Adds, each Add's result read only by the next: TF.js accumulating x's gradient, maybe
 * with terms from x's other readers between. The chain's last Add, and those other terms in order.
 */
export function gradientChain(
  index: RecordingIndex,
  exits: ReadonlyMap<Key, number[]>,
  terms: readonly Key[],
  n: number,
): { last: number; otherTerms: RecordedInput[] } {
  const { calls, values, readers, outputKeys, canon } = index;
  const adds = terms.map((k) => {
    const r = exits.get(k)!;
    check(!outputKeys.has(k) && r.length === 1 && calls[r[0]!]!.kernelName === 'Add', 'term');
    return r[0]!;
  });
  const first = Math.min(...adds);
  const last = Math.max(...adds);
  const chain = [first];
  while (chain.at(-1)! !== last) {
    const out = `v${calls[chain.at(-1)!]!.outputs[0]}`;
    const next = readers.get(out) ?? [];
    check(!outputKeys.has(out) && next.length === 1, 'chain read once');
    check(calls[next[0]!]!.kernelName === 'Add', 'chain of Adds');
    chain.push(next[0]!);
  }
  check(
    adds.every((a) => chain.includes(a)),
    'one chain',
  );
  const left = new Set(terms);
  const otherTerms: RecordedInput[] = [];
  chain.forEach((a, j) => {
    const c = calls[a]!;
    check(sizeOf(values[c.outputs[0]!]!.shape) === n, 'chain size');
    const previous = j === 0 ? null : `v${calls[chain[j - 1]!]!.outputs[0]}`;
    let fromPrevious = 0;
    for (const q of c.inputs) {
      const k = canon(q.ref);
      check(sizeOf(q.shape) === n, 'term size');
      if (k === previous && fromPrevious++ === 0) continue;
      if (left.delete(k)) continue;
      otherTerms.push(q);
    }
  });
  check(left.size === 0, 'each term once');
  return { last, otherTerms };
}

/** The given recording, as is. */
export function unchanged(recording: Recording, refused: string[]): RecordingRewrite {
  return { recording, origin: recording.calls.map((_, i) => i), rewritten: 0, refused };
}

/** A new recording: the given one's values and externals, more of them, calls replaced or added. */
export class RecordingSplice {
  readonly values: RecordedValue[];
  readonly externals: ExternalValue[];
  private readonly before = new Map<number, RecordedCall[]>();
  private readonly replaced = new Map<number, RecordedCall>();

  constructor(private readonly recording: Recording) {
    this.values = [...recording.values];
    this.externals = [...recording.externals];
  }

  /** A float32 scalar made during the step, read as input `name` (`firstRead`'s input index). */
  constant(value: number, name: string, input: number): RecordedInput {
    this.externals.push({
      shape: [],
      dtype: 'float32',
      origin: 'made',
      values: Float32Array.of(value),
      firstRead: { call: -1, input },
    });
    return {
      name,
      ref: { kind: 'external', index: this.externals.length - 1 },
      shape: [],
      dtype: 'float32',
    };
  }

  /** New value `index` as a float32 input (of its own shape unless told). */
  input(name: string, index: number, shape = this.values[index]!.shape): RecordedInput {
    return { name, ref: { kind: 'value', index }, shape, dtype: 'float32' };
  }

  /** A new call appended to `into`, making one new float32 value of `shape`; its index. */
  call(
    into: RecordedCall[],
    kernelName: string,
    inputs: RecordedInput[],
    shape: number[],
    attrs = {},
  ): number {
    this.values.push({ shape, dtype: 'float32' });
    const out = this.values.length - 1;
    into.push({ kernelName, attrs, inputs, outputs: [out], aliases: [-1] });
    return out;
  }

  /** Value `from` reshaped into given call `c`'s output (read as of `inputShape`). */
  reshapeInto(from: number, c: number, inputShape?: number[]): RecordedCall {
    const out = this.recording.calls[c]!.outputs[0]!;
    const shape = this.recording.values[out]!.shape;
    return {
      kernelName: 'Reshape',
      attrs: { shape },
      inputs: [this.input('x', from, inputShape)],
      outputs: [out],
      aliases: [0],
    };
  }

  /** Given call `c` (x's gradient's last Add) becomes `sum` + `dx`, or `dx` reshaped. */
  sumInto(c: number, sum: RecordedInput | null, dx: number, reshapeInputShape?: number[]) {
    const out = this.recording.calls[c]!.outputs[0]!;
    const outShape = this.recording.values[out]!.shape;
    this.replace(
      c,
      sum == null
        ? this.reshapeInto(dx, c, reshapeInputShape)
        : {
            kernelName: 'Add',
            attrs: {},
            inputs: [{ ...sum, name: 'a' }, this.input('b', dx, outShape)],
            outputs: [out],
            aliases: [-1],
          },
    );
  }

  /** Calls inserted before given call `c` (after those inserted there before). */
  insertBefore(c: number, calls: RecordedCall[]) {
    this.before.set(c, [...(this.before.get(c) ?? []), ...calls]);
  }

  replace(c: number, by: RecordedCall) {
    this.replaced.set(c, by);
  }

  finish(rewritten: number, refused: string[]): RecordingRewrite {
    const calls: RecordedCall[] = [];
    const origin: number[] = [];
    this.recording.calls.forEach((c, i) => {
      for (const a of this.before.get(i) ?? []) {
        calls.push(a);
        origin.push(i);
      }
      calls.push(this.replaced.get(i) ?? c);
      origin.push(i);
    });
    return {
      recording: { calls, values: this.values, externals: this.externals },
      origin,
      rewritten,
      refused,
    };
  }
}
