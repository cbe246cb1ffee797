/**
 * A hand-written GELU gradient for FIRST-ORDER step graphs only (build.ts's `geluGradients`,
 * set by hutchinson-step.ts for its `gradient` compiler, never for the AdaHessian one, whose
 * rounding lr-text's pinned results depend on). It changes the rounding: the gradients agree
 * with TF.js's to float32 rounding, not bit for bit. The same kind of rewrite as
 * layer-norm-grad.ts, and matched the same way.
 *
 * Why: tf.layers' 'gelu' (erf form) is y = x cdf with z = x / sqrt 2, cdf = 0.5 (1 + erf(z)).
 * TF.js differentiates each op, so x's gradient takes ten full-size passes: dy cdf, dy x,
 * times 0.5, erf's derivative (Square, Neg, Exp, times 2/sqrt pi), times that, divided by
 * sqrt 2, and the Add of the two terms. By hand, reusing the forward's z and cdf:
 *   dx = dy (cdf + x exp(c - z^2)),  c = ln(1/sqrt(2 pi))
 * (x phi(x) with phi the normal density, whose constant goes into the exponent): six passes
 * (Mul, Sub, Exp, Mul, Add, Mul).
 *
 * How, on the recording (aliases — Identity, Reshape, same-dtype Cast — are followed to the
 * value they share data with):
 *   1. The forward pattern, anchored at each Erf: z = RealDiv(x, sqrt 2), s = Add(1, erf(z)),
 *      cdf = Multiply(0.5, s), y = Multiply(x, cdf), float32, the constants scalars.
 *   2. dy: the full-size value that a call after y multiplies by cdf (exactly one). The
 *      gradient cone: the calls after y that read dy or the cone, and otherwise only the
 *      pattern's forward values, what is computed from those alone, and scalar constants (a
 *      full-size Add is x's gradient accumulating, not the cone).
 *   3. Refused (the plain translation stays) unless the cone's kernels, and those of the
 *      forward-only values it reads, are exactly TF.js 4.22's for this pattern (SIGNATURES),
 *      with its constants (0.5, 2/sqrt pi, sqrt 2), and what leaves the cone is exactly two
 *      full-size terms of x's gradient, read only by one chain of Adds, each Add's result read
 *      only by the next: TF.js accumulating x's gradient, Add(term, term) or, when x's later
 *      readers gave it a gradient before, Add(Add(earlier, term), term) (the tape adds the two
 *      terms one after the other: nothing else between them adds to x's gradient).
 *   4. The rewrite: the hand-written calls go in before the chain's last Add, which becomes the
 *      earlier gradient plus the hand-written dx (or dx alone). The cone and the chain's other
 *      Add, no longer read, are left out by build.ts like any unused call.
 * The recording given is not changed (a new one is returned: replays match against the
 * captured one).
 */
import type { GraphOutput } from './build.js';
import type { Recording, RecordedCall, RecordedInput, ValueRef } from './capture.js';

/** Kernels (aliases left out), sorted, as TF.js 4.22 differentiates tf.layers' 'gelu'. */
const SIGNATURES = {
  /** The calls that read dy or the cone. */
  cone: 'Multiply Multiply Multiply Multiply RealDiv',
  /** The calls the cone reads that are computed from forward values alone (erf's derivative). */
  derived: 'Exp Multiply Neg Square',
  /** The scalar constants the cone and those calls read. */
  constants: [0.5, 2 / Math.sqrt(Math.PI), Math.SQRT2].map(Math.fround).sort().join(' '),
};

export interface GeluRewrite {
  recording: Recording;
  /** Per call of the new recording, the call of the given one it stands for (profiles). */
  origin: number[];
  /** GELUs whose gradient was replaced. */
  rewritten: number;
  /** Why each other Erf was left alone. */
  refused: string[];
}

type Key = string;
const keyOf = (ref: ValueRef): Key => (ref.kind === 'value' ? `v${ref.index}` : `e${ref.index}`);
const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

class Refuse extends Error {}
function check(ok: boolean, why: string): asserts ok {
  if (!ok) throw new Refuse(why);
}

/** One matched GELU: what the rewrite replaces and what it reads. */
interface Match {
  /** The chain's last Add (replaced), and x's gradient before the GELU's terms (or null). */
  lastAdd: number;
  earlier: RecordedInput | null;
  x: RecordedInput;
  z: RecordedInput;
  cdf: RecordedInput;
  dy: RecordedInput;
  shape: number[];
}

export function rewriteGeluGradients(
  recording: Recording,
  outputs: readonly GraphOutput[],
): GeluRewrite {
  const { calls, values, externals } = recording;
  // A call returning its input's data (a bool -> float32 Cast too, but that is a new value).
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
  const shapeOfKey = (k: Key) =>
    k[0] === 'v' ? values[Number(k.slice(1))]!.shape : externals[Number(k.slice(1))]!.shape;
  /** Non-alias readers of each value (by root). */
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
  const outputKeys = new Set(outputs.map((o) => canon(o.ref)));
  /** A float32 scalar made during the step (a baked constant), or null. */
  const scalarOf = (k: Key): number | null => {
    if (k[0] !== 'e') return null;
    const ext = externals[Number(k.slice(1))]!;
    const ok = ext.origin === 'made' && ext.dtype === 'float32' && ext.values?.length === 1;
    return ok ? ext.values![0]! : null;
  };
  const inputNamed = (c: RecordedCall, name: string) => {
    const input = c.inputs.find((i) => i.name === name);
    check(input != null, `${c.kernelName} without input ${name}`);
    return input;
  };
  /** The one non-alias reader of `k` with this kernel and another input equal to `other`. */
  const binaryReader = (k: Key, kernel: string, isOther: (o: Key) => boolean) => {
    const found = (readers.get(k) ?? []).filter((r) => {
      const c = calls[r]!;
      if (c.kernelName !== kernel || c.inputs.length !== 2) return false;
      const [a, b] = c.inputs.map((q) => canon(q.ref));
      return (a === k && isOther(b!)) || (b === k && isOther(a!));
    });
    check(found.length === 1, `${found.length} ${kernel} readers`);
    return found[0]!;
  };
  const scalarIs = (value: number) => (k: Key) => scalarOf(k) === Math.fround(value);
  const used = new Set<number>();

  function match(e: number): Match {
    const erf = calls[e]!;
    const zInput = inputNamed(erf, 'x');
    const z = canon(zInput.ref);
    const shape = zInput.shape;
    const n = sizeOf(shape);
    const div = calls[producer.get(z) ?? -1];
    check(div?.kernelName === 'RealDiv', 'z is not a RealDiv');
    check(scalarIs(Math.SQRT2)(canon(inputNamed(div, 'b').ref)), 'z = x / sqrt 2');
    const xInput = inputNamed(div, 'a');
    const x = canon(xInput.ref);
    check(sizeOf(xInput.shape) === n, 'x size');
    const erfOut = `v${erf.outputs[0]}`;
    const add = calls[binaryReader(erfOut, 'Add', scalarIs(1))]!;
    const s = `v${add.outputs[0]}`;
    const half = calls[binaryReader(s, 'Multiply', scalarIs(0.5))]!;
    const cdf = `v${half.outputs[0]}`;
    const yCall = binaryReader(cdf, 'Multiply', (o) => o === x);
    const y = `v${calls[yCall]!.outputs[0]}`;
    const pattern = [div, erf, add, half, calls[yCall]!];
    check(
      pattern.every((c) => c.inputs.every((i) => i.dtype === 'float32')),
      'float32',
    );
    check(
      [s, cdf, y].every((k) => sizeOf(shapeOfKey(k)) === n),
      'sizes',
    );
    const base = new Set<Key>([x, z, erfOut, s, cdf]);

    // dy: multiplied by cdf after y (y itself multiplies x by it).
    const dys = (readers.get(cdf) ?? [])
      .filter((r) => r > yCall && calls[r]!.kernelName === 'Multiply')
      .map((r) => calls[r]!.inputs.find((q) => canon(q.ref) !== cdf))
      .filter((q): q is RecordedInput => q != null && sizeOf(q.shape) === n);
    check(dys.length === 1, `${dys.length} candidates for dy`);
    const dyInput = dys[0]!;
    const dy = canon(dyInput.ref);
    check(!base.has(dy) && dy !== y, 'dy is a forward value');

    // The cone, and what only the forward values make.
    const derived = new Map<Key, number>();
    const cone = new Set<Key>();
    const coneCalls: number[] = [];
    for (let i = yCall + 1; i < calls.length; i++) {
      const c = calls[i]!;
      if (isAlias(c) || c.outputs.length !== 1) continue;
      const ins = c.inputs.map((q) => canon(q.ref));
      const forwardOnly = (k: Key) => base.has(k) || derived.has(k) || scalarOf(k) != null;
      if (ins.every(forwardOnly)) {
        derived.set(`v${c.outputs[0]}`, i);
        continue;
      }
      const fromDy = ins.some((k) => k === dy || cone.has(k));
      const inCone = ins.every((k) => forwardOnly(k) || k === dy || cone.has(k));
      const accumulates = c.kernelName === 'Add' && sizeOf(values[c.outputs[0]!]!.shape) === n;
      if (!fromDy || !inCone || accumulates) continue;
      cone.add(`v${c.outputs[0]}`);
      coneCalls.push(i);
    }
    // The forward-only calls the cone reads, and what they read in turn.
    const derivedCalls = new Set<number>();
    const constants: number[] = [];
    const visit = (i: number) => {
      for (const q of calls[i]!.inputs) {
        const k = canon(q.ref);
        const d = derived.get(k);
        if (d != null && !derivedCalls.has(d)) {
          derivedCalls.add(d);
          visit(d);
        } else if (d == null && scalarOf(k) != null) constants.push(scalarOf(k)!);
      }
    };
    coneCalls.forEach(visit);
    const kernels = (list: Iterable<number>) =>
      [...list]
        .map((i) => calls[i]!.kernelName)
        .sort()
        .join(' ');
    check(kernels(coneCalls) === SIGNATURES.cone, `cone ${kernels(coneCalls)}`);
    check(kernels(derivedCalls) === SIGNATURES.derived, `derived ${kernels(derivedCalls)}`);
    const constantList = constants.sort().join(' ');
    check(constantList === SIGNATURES.constants, `constants ${constantList}`);

    // What leaves the cone: two full-size terms of x's gradient.
    const coneCallSet = new Set(coneCalls);
    const exits = new Map<Key, number[]>();
    for (const k of cone) {
      const out = (readers.get(k) ?? []).filter((r) => !coneCallSet.has(r));
      if (out.length > 0 || outputKeys.has(k)) exits.set(k, out);
    }
    const full = [...exits.keys()];
    check(full.length === 2 && full.every((k) => sizeOf(shapeOfKey(k)) === n), 'exits');

    // x's gradient: one chain of Adds reading the two terms.
    const adds = full.map((k) => {
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
    const terms = new Set(full);
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
        if (terms.delete(k)) continue;
        otherTerms.push(q);
      }
    });
    check(terms.size === 0, 'each term once');
    check(otherTerms.length <= 1, `${otherTerms.length} other terms`);
    check(!used.has(last), 'overlapping GELUs');
    const input = (name: string, ref: ValueRef): RecordedInput => ({
      name,
      ref: rootRef(ref),
      shape,
      dtype: 'float32',
    });
    return {
      lastAdd: last,
      earlier: otherTerms[0] ?? null,
      x: input('a', xInput.ref),
      z: input('a', zInput.ref),
      cdf: input('a', { kind: 'value', index: half.outputs[0]! }),
      dy: input('a', dyInput.ref),
      shape,
    };
  }

  const matches: Match[] = [];
  const refused: string[] = [];
  calls.forEach((c, e) => {
    if (c.kernelName !== 'Erf') return;
    try {
      const m = match(e);
      used.add(m.lastAdd);
      matches.push(m);
    } catch (err) {
      if (!(err instanceof Refuse)) throw err;
      refused.push(`Erf call ${e}: ${err.message}`);
    }
  });
  if (matches.length === 0) {
    return { recording, origin: calls.map((_, i) => i), rewritten: 0, refused };
  }

  // The new recording: the hand-written calls before each match's last Add.
  const newValues = [...values];
  const newExternals = [...externals];
  newExternals.push({
    shape: [],
    dtype: 'float32',
    origin: 'made',
    values: Float32Array.of(-0.5 * Math.log(2 * Math.PI)),
    firstRead: { call: -1, input: 0 },
  });
  const logDensityConstant: RecordedInput = {
    name: 'a',
    ref: { kind: 'external', index: newExternals.length - 1 },
    shape: [],
    dtype: 'float32',
  };
  const before = new Map<number, RecordedCall[]>();
  const replaced = new Map<number, RecordedCall>();
  for (const m of matches) {
    const added: RecordedCall[] = [];
    const as = (name: string, index: number): RecordedInput => ({
      name,
      ref: { kind: 'value', index },
      shape: m.shape,
      dtype: 'float32',
    });
    const call = (kernelName: string, inputs: RecordedInput[]) => {
      newValues.push({ shape: m.shape, dtype: 'float32' });
      const out = newValues.length - 1;
      added.push({ kernelName, attrs: {}, inputs, outputs: [out], aliases: [-1] });
      return out;
    };
    const zz = call('Multiply', [
      { ...m.z, name: 'a' },
      { ...m.z, name: 'b' },
    ]);
    const exponent = call('Sub', [logDensityConstant, as('b', zz)]);
    const density = call('Exp', [as('x', exponent)]);
    const xDensity = call('Multiply', [{ ...m.x, name: 'a' }, as('b', density)]);
    const slope = call('Add', [{ ...m.cdf, name: 'a' }, as('b', xDensity)]);
    const dx = call('Multiply', [{ ...m.dy, name: 'a' }, as('b', slope)]);
    // x's gradient: the earlier gradient, then dx.
    const outShape = values[calls[m.lastAdd]!.outputs[0]!]!.shape;
    const sum: RecordedInput | null = m.earlier && { ...m.earlier, shape: outShape };
    const out = calls[m.lastAdd]!.outputs[0]!;
    const dxIn: RecordedInput = { ...as('b', dx), shape: outShape };
    replaced.set(
      m.lastAdd,
      sum == null
        ? {
            kernelName: 'Reshape',
            attrs: { shape: outShape },
            inputs: [{ ...dxIn, name: 'x' }],
            outputs: [out],
            aliases: [0],
          }
        : {
            kernelName: 'Add',
            attrs: {},
            inputs: [{ ...sum, name: 'a' }, dxIn],
            outputs: [out],
            aliases: [-1],
          },
    );
    before.set(m.lastAdd, added);
  }
  const newCalls: RecordedCall[] = [];
  const origin: number[] = [];
  calls.forEach((c, i) => {
    for (const a of before.get(i) ?? []) {
      newCalls.push(a);
      origin.push(i);
    }
    newCalls.push(replaced.get(i) ?? c);
    origin.push(i);
  });
  return {
    recording: { calls: newCalls, values: newValues, externals: newExternals },
    origin,
    rewritten: matches.length,
    refused,
  };
}
