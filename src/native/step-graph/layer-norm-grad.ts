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
 * captured one). The machinery shared with gelu-grad.ts is recording-rewrite.ts's.
 */
import type { GraphOutput } from './build.js';
import type { Recording, RecordedCall, RecordedInput } from './capture.js';
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

/**
 * The cone's kernels (aliases left out), sorted, as TF.js 4.22 makes them for tf.layers' layer
 * norm on a rank-3 input; anything else is refused.
 */
const CONE_SIGNATURES = new Set([
  'Add Multiply Multiply Multiply Multiply Multiply Multiply Multiply Neg RealDiv RealDiv Sum Sum Sum Sum Sum Sum Sum Tile Tile',
]);

/** Layer norms whose gradient was replaced (`rewritten`); why each other FusedBatchNorm was not. */
export type LayerNormRewrite = RecordingRewrite;

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
  const index = indexRecording(recording, outputs);
  const { calls, values, producer, canon, rootRef, shapeOfKey, inputNamed, producerOf } = index;
  const lastAxis = (c: RecordedCall, rank: number) => {
    const axis = c.attrs['axis'];
    const list = Array.isArray(axis) ? axis : [axis];
    return list.length === 1 && (list[0] === rank - 1 || list[0] === -1);
  };

  function match(f: number, used: ReadonlySet<number>): Match {
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
    const cone = gradientCone(index, f, dy, base, n, index.isScalarConstant);
    const signature = cone.calls
      .map((i) => calls[i]!.kernelName)
      .sort()
      .join(' ');
    check(CONE_SIGNATURES.has(signature), `cone ${signature}`);

    // What leaves the cone.
    const exits = coneExits(index, cone);
    const full = [...exits.keys()].filter((k) => sizeOf(shapeOfKey(k)) === n);
    const small = [...exits.keys()].filter((k) => sizeOf(shapeOfKey(k)) === d);
    check(full.length === 3 && small.length === 2 && exits.size === 5, 'exits');
    const coneReadsForward = cone.readsForward;
    const dbetaKey = small.find((k) => coneReadsForward.get(k) === false);
    const dgammaKey = small.find((k) => coneReadsForward.get(k) === true);
    check(dbetaKey != null && dgammaKey != null, "gamma's and beta's gradients");

    // x's gradient: one chain of Adds reading the three terms.
    const { last, otherTerms } = gradientChain(index, exits, full, n);
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

  const { matches, refused } = matchEach(calls, 'FusedBatchNorm', match, (m) => [
    m.dgamma,
    m.dbeta,
    m.lastAdd,
    m.forward,
  ]);
  if (matches.length === 0) return unchanged(recording, refused);

  // The new recording: hand-written calls before each match's first replaced call.
  // ADAHESSIAN_LN_FORWARD=0 leaves the forward pass as TF.js's (A/Bs).
  const forwardToo = process.env['ADAHESSIAN_LN_FORWARD'] !== '0';
  const splice = new RecordingSplice(recording);
  for (const m of matches) {
    const added: RecordedCall[] = [];
    const as = (name: string, index: number, shape?: number[]) => splice.input(name, index, shape);
    const call = (kernelName: string, inputs: RecordedInput[], shape: number[], attrs = {}) =>
      splice.call(added, kernelName, inputs, shape, attrs);
    const rank = m.shape.length;
    const rows = [...m.shape.slice(0, -1), 1];
    const d = m.shape.at(-1)!;
    const eps = splice.constant(m.epsilon, 'b', 1);
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
      splice.insertBefore(m.forward, added.splice(0));
      splice.replace(m.forward, splice.reshapeInto(y, m.forward));
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
    splice.replace(m.dgamma, splice.reshapeInto(dgamma, m.dgamma));
    splice.replace(m.dbeta, splice.reshapeInto(dbeta, m.dbeta));
    // x's gradient: the other terms first, in the chain's order, then dx.
    const outShape = values[calls[m.lastAdd]!.outputs[0]!]!.shape;
    const terms = m.otherTerms.map((t): RecordedInput => ({ ...t, shape: outShape }));
    let sum: RecordedInput | null = terms[0] ?? null;
    for (const term of terms.slice(1)) {
      const a: RecordedInput = { ...sum!, name: 'a' };
      sum = as('a', call('Add', [a, { ...term, name: 'b' }], outShape));
    }
    splice.sumInto(m.lastAdd, sum, dx);
    splice.insertBefore(Math.min(m.dgamma, m.dbeta, m.lastAdd), added);
  }
  return splice.finish(matches.length, refused);
}
