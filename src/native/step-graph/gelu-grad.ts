/**
 * A hand-written GELU gradient for FIRST-ORDER step graphs only (build.ts's `geluGradients`,
 * set by hutchinson-step.ts for its `gradient` compiler, never for the AdaHessian one, whose
 * rounding lr-text's pinned results depend on). It changes the rounding: the gradients agree
 * with TF.js's to float32 rounding, not bit for bit. The same kind of rewrite as
 * layer-norm-grad.ts, and matched the same way (recording-rewrite.ts).
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
import {
  check,
  coneExits,
  gradientChain,
  gradientCone,
  indexRecording,
  matchEach,
  RecordingSplice,
  sizeOf,
  unchanged,
  type Key,
  type RecordingRewrite,
} from './recording-rewrite.js';

/** Kernels (aliases left out), sorted, as TF.js 4.22 differentiates tf.layers' 'gelu'. */
const SIGNATURES = {
  /** The calls that read dy or the cone. */
  cone: 'Multiply Multiply Multiply Multiply RealDiv',
  /** The calls the cone reads that are computed from forward values alone (erf's derivative). */
  derived: 'Exp Multiply Neg Square',
  /** The scalar constants the cone and those calls read. */
  constants: [0.5, 2 / Math.sqrt(Math.PI), Math.SQRT2].map(Math.fround).sort().join(' '),
};

/** GELUs whose gradient was replaced (`rewritten`), and why each other Erf was left alone. */
export type GeluRewrite = RecordingRewrite;

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
  const index = indexRecording(recording, outputs);
  const { calls, values, producer, readers, canon, shapeOfKey, scalarOf, inputNamed } = index;
  const scalarIs = (value: number) => (k: Key) => scalarOf(k) === Math.fround(value);

  function match(e: number, used: ReadonlySet<number>): Match {
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
    const add = calls[index.binaryReader(erfOut, 'Add', scalarIs(1))]!;
    const s = `v${add.outputs[0]}`;
    const half = calls[index.binaryReader(s, 'Multiply', scalarIs(0.5))]!;
    const cdf = `v${half.outputs[0]}`;
    const yCall = index.binaryReader(cdf, 'Multiply', (o) => o === x);
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
    const cone = gradientCone(index, yCall, dy, base, n, (k) => scalarOf(k) != null);
    const { derived } = cone;
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
    cone.calls.forEach(visit);
    const kernels = (list: Iterable<number>) =>
      [...list]
        .map((i) => calls[i]!.kernelName)
        .sort()
        .join(' ');
    check(kernels(cone.calls) === SIGNATURES.cone, `cone ${kernels(cone.calls)}`);
    check(kernels(derivedCalls) === SIGNATURES.derived, `derived ${kernels(derivedCalls)}`);
    const constantList = constants.sort().join(' ');
    check(constantList === SIGNATURES.constants, `constants ${constantList}`);

    // What leaves the cone: two full-size terms of x's gradient.
    const exits = coneExits(index, cone);
    const full = [...exits.keys()];
    check(full.length === 2 && full.every((k) => sizeOf(shapeOfKey(k)) === n), 'exits');

    // x's gradient: one chain of Adds reading the two terms.
    const { last, otherTerms } = gradientChain(index, exits, full, n);
    check(otherTerms.length <= 1, `${otherTerms.length} other terms`);
    check(!used.has(last), 'overlapping GELUs');
    const input = (name: string, ref: ValueRef): RecordedInput => ({
      name,
      ref: index.rootRef(ref),
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

  const { matches, refused } = matchEach(calls, 'Erf', match, (m) => [m.lastAdd]);
  if (matches.length === 0) return unchanged(recording, refused);

  // The new recording: the hand-written calls before each match's last Add.
  const splice = new RecordingSplice(recording);
  const logDensityConstant = splice.constant(-0.5 * Math.log(2 * Math.PI), 'a', 0);
  for (const m of matches) {
    const added: RecordedCall[] = [];
    const as = (name: string, index: number) => splice.input(name, index, m.shape);
    const call = (kernelName: string, inputs: RecordedInput[]) =>
      splice.call(added, kernelName, inputs, m.shape);
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
    splice.sumInto(m.lastAdd, sum, dx, outShape);
    splice.insertBefore(m.lastAdd, added);
  }
  return splice.finish(matches.length, refused);
}
