/**
 * A hand-written layer-norm gradient for FIRST-ORDER step graphs only (loss and gradients, as
 * TF.js's optimizers replay them: build.ts's `layerNormGradients`, set by hutchinson-step.ts
 * for its `gradient` compiler, never for the AdaHessian one, whose rounding lr-text's pinned
 * results depend on). It changes the rounding: the gradients agree with TF.js's to float32
 * rounding, not bit for bit.
 *
 * Why: tf.layers' layer norm is moments (Mean, Sub, Square, Mean), four Tiles to the input's
 * full shape and a FusedBatchNorm; TF.js differentiates each of those ops, so x's gradient
 * arrives in three terms (the batch norm's, the Sub's and the Mean's) summed into x's
 * gradient, through ~15 full-size passes. By hand, with x^ = (x - mean) rstd and g = dy gamma:
 *   dx = rstd (g - mean(g) - x^ mean(g x^)),  dgamma = sum(dy x^),  dbeta = sum(dy)
 * (sums over all axes but the last, means over the last): 8 full-size passes
 * (bench/speed/layer-norm-grad.ts: 23 ONNX nodes against 112, 0.65x the CPU time).
 *
 * How, on the recording (calls and values; aliases — Identity, Reshape, same-dtype Cast — are
 * followed to the value they share data with):
 *   1. The forward pattern, anchored at each FusedBatchNorm: its x, mean = Tile(Mean(x, last
 *      axis)), variance = Tile(Mean(Square(Sub(x, mean)))), scale and offset Tiles of
 *      [d]-element values.
 *   2. dy: the full-size value multiplied by the scale's tile that no other such value is made
 *      from. The gradient cone: the calls after the batch norm that read dy or the cone, and
 *      otherwise only the pattern's forward values, what is computed from those alone, and
 *      scalar constants (a full-size Add is x's gradient accumulating, not the cone).
 *   3. Refused (the plain translation stays) unless the cone's kernels are exactly TF.js
 *      4.22's for this pattern (CONE_SIGNATURES), and what leaves the cone is exactly three
 *      full-size terms of x's gradient and two [d]-element ones (gamma's, beta's), and the
 *      three terms are read only by one chain of Adds, each Add's result read only by the next
 *      (TF.js accumulating x's gradient, maybe with terms from x's other readers between).
 *   4. The rewrite: the hand-written calls go in before the first replaced call; gamma's and
 *      beta's gradients become reshapes of theirs; the chain's last Add becomes the chain's
 *      other terms (in order) plus the hand-written dx. The cone and the chain's other Adds,
 *      no longer read, are left out by build.ts like any unused call.
 *   5. The forward pass too: the FusedBatchNorm becomes y = x^ gamma + beta, with x^ and rstd
 *      made there and kept for the gradient (TF.js's batch norm subtracts the mean a second time
 *      and divides: two full-size passes more per layer norm; ADAHESSIAN_LN_FORWARD=0 leaves it
 *      as it was, for A/Bs). So the loss's rounding changes too (float32 rounding).
 * The recording given is not changed (a new one is returned: replays match against the
 * captured one).
 */
import type { GraphOutput } from './build.js';
import type { Recording, RecordedCall, RecordedInput, ValueRef } from './capture.js';

/**
 * The cone's kernels (aliases left out), sorted, as TF.js 4.22 makes them for tf.layers' layer
 * norm on a rank-3 input; anything else is refused.
 */
const CONE_SIGNATURES = new Set([
  'Add Multiply Multiply Multiply Multiply Multiply Multiply Multiply Neg RealDiv RealDiv Sum Sum Sum Sum Sum Sum Sum Tile Tile',
]);

export interface LayerNormRewrite {
  recording: Recording;
  /** Per call of the new recording, the call of the given one it stands for (profiles). */
  origin: number[];
  /** Layer norms whose gradient was replaced. */
  rewritten: number;
  /** Why each other FusedBatchNorm was left alone. */
  refused: string[];
}

type Key = string;
const keyOf = (ref: ValueRef): Key => (ref.kind === 'value' ? `v${ref.index}` : `e${ref.index}`);
const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

class Refuse extends Error {}
function check(ok: boolean, why: string): asserts ok {
  if (!ok) throw new Refuse(why);
}

/** One matched layer norm: what the rewrite replaces and what it reads. */
interface Match {
  /** Calls replaced (by index): gamma's and beta's gradients, the chain's last Add. */
  dgamma: number;
  dbeta: number;
  lastAdd: number;
  /** The FusedBatchNorm (replaced too, unless ADAHESSIAN_LN_FORWARD=0). */
  forward: number;
  /** The chain's terms that are not the layer norm's, in order. */
  otherTerms: RecordedInput[];
  centred: RecordedInput;
  variance: RecordedInput;
  gamma: RecordedInput;
  beta: RecordedInput;
  dy: RecordedInput;
  epsilon: number;
  shape: number[];
}

export function rewriteLayerNormGradients(
  recording: Recording,
  outputs: readonly GraphOutput[],
): LayerNormRewrite {
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
  const canon = (ref: ValueRef): Key => keyOf(root.get(keyOf(ref)) ?? ref);
  const rootRef = (ref: ValueRef): ValueRef => root.get(keyOf(ref)) ?? ref;
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
  const inputNamed = (c: RecordedCall, name: string) => {
    const input = c.inputs.find((i) => i.name === name);
    check(input != null, `${c.kernelName} without input ${name}`);
    return input;
  };
  const producerOf = (k: Key, kernel: string) => {
    const p = producer.get(k);
    check(p != null && calls[p]!.kernelName === kernel, `${k} is not a ${kernel}`);
    return calls[p]!;
  };
  const lastAxis = (c: RecordedCall, rank: number) => {
    const axis = c.attrs['axis'];
    const list = Array.isArray(axis) ? axis : [axis];
    return list.length === 1 && (list[0] === rank - 1 || list[0] === -1);
  };
  const scalarConstant = (k: Key) => {
    if (k[0] !== 'e') return false;
    const ext = externals[Number(k.slice(1))]!;
    return ext.origin === 'made' && ext.values != null && ext.values.length === 1;
  };
  const used = new Set<number>();

  function match(f: number): Match {
    const fbn = calls[f]!;
    const x = canon(inputNamed(fbn, 'x').ref);
    const tileOf = (name: string) => {
      const tile = producerOf(canon(inputNamed(fbn, name).ref), 'Tile');
      check(sizeOf(values[tile.outputs[0]!]!.shape) === sizeOf(shapeOfKey(x)), `${name} tiled`);
      return tile;
    };
    const meanTile = tileOf('mean');
    const varianceTile = tileOf('variance');
    const scaleTile = tileOf('scale');
    const offsetTile = tileOf('offset');
    const mean = producerOf(canon(meanTile.inputs[0]!.ref), 'Mean');
    const variance = producerOf(canon(varianceTile.inputs[0]!.ref), 'Mean');
    const shape = mean.inputs[0]!.shape;
    const d = shape.at(-1)!;
    const n = sizeOf(shape);
    check(shape.length >= 2 && canon(mean.inputs[0]!.ref) === x, 'mean of x');
    check(lastAxis(mean, shape.length) && mean.attrs['keepDims'] === true, 'mean axis');
    check(lastAxis(variance, shape.length) && variance.attrs['keepDims'] === true, 'var axis');
    const square = producerOf(canon(variance.inputs[0]!.ref), 'Square');
    const sub = producerOf(canon(square.inputs[0]!.ref), 'Sub');
    const meanKey = `v${mean.outputs[0]}`;
    check(
      canon(inputNamed(sub, 'a').ref) === x && canon(inputNamed(sub, 'b').ref) === meanKey,
      'x - mean',
    );
    check(sizeOf(shapeOfKey(canon(inputNamed(sub, 'a').ref))) === n, 'x size');
    for (const tile of [meanTile, varianceTile]) {
      const reps = tile.attrs['reps'] as number[];
      check(
        reps.length === shape.length && reps.every((r, i) => r === (i === reps.length - 1 ? d : 1)),
        'reps',
      );
    }
    const gamma = scaleTile.inputs[0]!;
    const beta = offsetTile.inputs[0]!;
    check(sizeOf(gamma.shape) === d && sizeOf(beta.shape) === d, 'scale and offset of [d]');
    const allFloat = [fbn, mean, variance, square, sub].every((c) =>
      c.inputs.every((i) => i.dtype === 'float32'),
    );
    check(allFloat, 'float32');
    const epsilon = fbn.attrs['varianceEpsilon'];
    check(typeof epsilon === 'number', 'epsilon');

    const base = new Set<Key>([x, meanKey, `v${variance.outputs[0]}`, `v${square.outputs[0]}`]);
    base.add(`v${sub.outputs[0]}`);
    for (const t of [meanTile, varianceTile, scaleTile, offsetTile]) {
      base.add(`v${t.outputs[0]}`);
      base.add(canon(t.inputs[0]!.ref));
    }
    const y = `v${fbn.outputs[0]}`;
    const scaleKey = `v${scaleTile.outputs[0]}`;

    // dy: multiplied by the scale's tile, and not made from another such value.
    const candidates = new Map<Key, RecordedInput>();
    for (let i = f + 1; i < calls.length; i++) {
      const c = calls[i]!;
      if (c.kernelName !== 'Multiply' || c.inputs.length !== 2) continue;
      const [a, b] = c.inputs.map((q) => canon(q.ref));
      const other = a === scaleKey ? 1 : b === scaleKey ? 0 : -1;
      if (other < 0) continue;
      const k = canon(c.inputs[other]!.ref);
      if (sizeOf(shapeOfKey(k)) === n && !base.has(k) && k !== y)
        candidates.set(k, c.inputs[other]!);
    }
    const fromCandidate = (k: Key) => {
      const p = producer.get(k);
      return p != null && calls[p]!.inputs.some((q) => candidates.has(canon(q.ref)));
    };
    const dys = [...candidates.keys()].filter((k) => !fromCandidate(k));
    check(dys.length === 1, `${dys.length} candidates for dy`);
    const dy = dys[0]!;
    const dyInput = candidates.get(dy)!;

    // The cone, and what only the forward values make (D*).
    const derived = new Set<Key>();
    const cone = new Set<Key>();
    const coneCalls: number[] = [];
    const coneReadsForward = new Map<Key, boolean>();
    for (let i = f + 1; i < calls.length; i++) {
      const c = calls[i]!;
      if (isAlias(c) || c.outputs.length !== 1) continue;
      const ins = c.inputs.map((q) => canon(q.ref));
      const forwardOnly = (k: Key) => base.has(k) || derived.has(k) || scalarConstant(k);
      if (ins.every(forwardOnly)) {
        derived.add(`v${c.outputs[0]}`);
        continue;
      }
      const fromDy = ins.some((k) => k === dy || cone.has(k));
      const inCone = ins.every((k) => forwardOnly(k) || k === dy || cone.has(k));
      // A full-size Add is x's gradient accumulating (the cone's own Add is over rows).
      const accumulates = c.kernelName === 'Add' && sizeOf(values[c.outputs[0]!]!.shape) === n;
      if (!fromDy || !inCone || accumulates) continue;
      const out = `v${c.outputs[0]}`;
      cone.add(out);
      coneCalls.push(i);
      coneReadsForward.set(
        out,
        ins.some((k) => base.has(k) || derived.has(k) || coneReadsForward.get(k) === true),
      );
    }
    const signature = coneCalls
      .map((i) => calls[i]!.kernelName)
      .sort()
      .join(' ');
    check(CONE_SIGNATURES.has(signature), `cone ${signature}`);
    const coneCallSet = new Set(coneCalls);

    // What leaves the cone.
    const exits = new Map<Key, number[]>();
    for (const k of cone) {
      const out = (readers.get(k) ?? []).filter((r) => !coneCallSet.has(r));
      if (out.length > 0 || outputKeys.has(k)) exits.set(k, out);
    }
    const full = [...exits.keys()].filter((k) => sizeOf(shapeOfKey(k)) === n);
    const small = [...exits.keys()].filter((k) => sizeOf(shapeOfKey(k)) === d);
    check(full.length === 3 && small.length === 2 && exits.size === 5, 'exits');
    const dbetaKey = small.find((k) => coneReadsForward.get(k) === false);
    const dgammaKey = small.find((k) => coneReadsForward.get(k) === true);
    check(dbetaKey != null && dgammaKey != null, "gamma's and beta's gradients");

    // x's gradient: one chain of Adds reading the three terms.
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
    check(
      adds.every((a) => chain.includes(a)),
      'one chain',
    );
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
    const rootCall = (k: Key) => producer.get(k)!;
    const result: Match = {
      dgamma: rootCall(dgammaKey),
      dbeta: rootCall(dbetaKey),
      lastAdd: last,
      forward: f,
      otherTerms,
      centred: {
        name: 'a',
        ref: { kind: 'value', index: sub.outputs[0]! },
        shape,
        dtype: 'float32',
      },
      variance: {
        name: 'a',
        ref: { kind: 'value', index: variance.outputs[0]! },
        shape: values[variance.outputs[0]!]!.shape,
        dtype: 'float32',
      },
      gamma: { name: 'b', ref: rootRef(gamma.ref), shape: [d], dtype: 'float32' },
      beta: { name: 'b', ref: rootRef(beta.ref), shape: [d], dtype: 'float32' },
      dy: { name: 'a', ref: rootRef(dyInput.ref), shape, dtype: 'float32' },
      epsilon,
      shape,
    };
    for (const c of [result.dgamma, result.dbeta, result.lastAdd, f]) {
      check(!used.has(c), 'overlapping layer norms');
    }
    return result;
  }

  const matches: Match[] = [];
  const refused: string[] = [];
  calls.forEach((c, f) => {
    if (c.kernelName !== 'FusedBatchNorm') return;
    try {
      const m = match(f);
      [m.dgamma, m.dbeta, m.lastAdd, m.forward].forEach((i) => used.add(i));
      matches.push(m);
    } catch (e) {
      if (!(e instanceof Refuse)) throw e;
      refused.push(`FusedBatchNorm call ${f}: ${e.message}`);
    }
  });
  if (matches.length === 0) {
    return { recording, origin: calls.map((_, i) => i), rewritten: 0, refused };
  }

  // The new recording: hand-written calls before each match's first replaced call.
  // ADAHESSIAN_LN_FORWARD=0 leaves the forward pass as TF.js's (A/Bs).
  const forwardToo = process.env['ADAHESSIAN_LN_FORWARD'] !== '0';
  const newValues = [...values];
  const newExternals = [...externals];
  const before = new Map<number, RecordedCall[]>();
  const replaced = new Map<number, RecordedCall>();
  for (const m of matches) {
    const added: RecordedCall[] = [];
    const value = (shape: number[]) => {
      newValues.push({ shape, dtype: 'float32' });
      return newValues.length - 1;
    };
    const as = (name: string, index: number, shape = newValues[index]!.shape): RecordedInput => ({
      name,
      ref: { kind: 'value', index },
      shape,
      dtype: 'float32',
    });
    const call = (kernelName: string, inputs: RecordedInput[], shape: number[], attrs = {}) => {
      const out = value(shape);
      added.push({ kernelName, attrs, inputs, outputs: [out], aliases: [-1] });
      return out;
    };
    const reshapeInto = (from: number, c: number): RecordedCall => {
      const out = calls[c]!.outputs[0]!;
      const shape = values[out]!.shape;
      return {
        kernelName: 'Reshape',
        attrs: { shape },
        inputs: [as('x', from)],
        outputs: [out],
        aliases: [0],
      };
    };
    const rank = m.shape.length;
    const rows = [...m.shape.slice(0, -1), 1];
    const d = m.shape.at(-1)!;
    newExternals.push({
      shape: [],
      dtype: 'float32',
      origin: 'made',
      values: Float32Array.of(m.epsilon),
      firstRead: { call: -1, input: 1 },
    });
    const eps: RecordedInput = {
      name: 'b',
      ref: { kind: 'external', index: newExternals.length - 1 },
      shape: [],
      dtype: 'float32',
    };
    const lastMean = { axis: [rank - 1], keepDims: true };
    const overRows = { axis: Array.from({ length: rank - 1 }, (_, i) => i), keepDims: false };
    const varEps = call('Add', [{ ...m.variance, name: 'a' }, eps], rows);
    const rstd = call('Rsqrt', [as('x', varEps)], rows);
    const xhat = call('Multiply', [{ ...m.centred, name: 'a' }, as('b', rstd)], m.shape);
    if (forwardToo) {
      // y = x^ gamma + beta in the forward pass, x^ kept for the gradient: TF.js's batch norm
      // subtracts the mean again and divides by the standard deviation (two passes more).
      const scaled = call('Multiply', [as('a', xhat), m.gamma], m.shape);
      const y = call('Add', [as('a', scaled), m.beta], m.shape);
      before.set(m.forward, added.splice(0));
      replaced.set(m.forward, reshapeInto(y, m.forward));
    }
    const g = call('Multiply', [{ ...m.dy, name: 'a' }, m.gamma], m.shape);
    const mean1 = call('Mean', [as('x', g)], rows, lastMean);
    const gx = call('Multiply', [as('a', g), as('b', xhat)], m.shape);
    const mean2 = call('Mean', [as('x', gx)], rows, lastMean);
    const t = call('Multiply', [as('a', xhat), as('b', mean2)], m.shape);
    const g1 = call('Sub', [as('a', g), as('b', mean1)], m.shape);
    const g2 = call('Sub', [as('a', g1), as('b', t)], m.shape);
    const dx = call('Multiply', [as('a', g2), as('b', rstd)], m.shape);
    const dyx = call('Multiply', [{ ...m.dy, name: 'a' }, as('b', xhat)], m.shape);
    const dgamma = call('Sum', [as('x', dyx)], [d], overRows);
    const dbeta = call('Sum', [{ ...m.dy, name: 'x' }], [d], overRows);
    replaced.set(m.dgamma, reshapeInto(dgamma, m.dgamma));
    replaced.set(m.dbeta, reshapeInto(dbeta, m.dbeta));
    // x's gradient: the other terms first, in the chain's order, then dx.
    const outShape = values[calls[m.lastAdd]!.outputs[0]!]!.shape;
    const terms = m.otherTerms.map((t): RecordedInput => ({ ...t, shape: outShape }));
    let sum: RecordedInput | null = terms[0] ?? null;
    for (const term of terms.slice(1)) {
      const a: RecordedInput = { ...sum!, name: 'a' };
      sum = as('a', call('Add', [a, { ...term, name: 'b' }], outShape));
    }
    const out = calls[m.lastAdd]!.outputs[0]!;
    replaced.set(
      m.lastAdd,
      sum == null
        ? reshapeInto(dx, m.lastAdd)
        : {
            kernelName: 'Add',
            attrs: {},
            inputs: [{ ...sum, name: 'a' }, as('b', dx, outShape)],
            outputs: [out],
            aliases: [-1],
          },
    );
    const at = Math.min(m.dgamma, m.dbeta, m.lastAdd);
    before.set(at, [...(before.get(at) ?? []), ...added]);
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
