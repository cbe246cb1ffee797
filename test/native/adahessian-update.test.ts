/**
 * The fused AdaHessian update (src/native/adahessian-update.ts) against the loop it had before it
 * checked finiteness in its own pass: the same float32 bits for every averaging mode, power and
 * weight decay (the language-model results are pinned to it); and its finiteness marks: a
 * non-finite g, |D| (one entry, averaged over a kernel), or a new weight that overflows only
 * when stored as float32 still makes allFinite false, and a tensor it did not see is still read.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { cpuAdaHessianUpdate, setAdaHessianSimd } from '../../src/native/adahessian-update.js';
import type { FusedUpdateInput } from '../../src/optimizers/fused-update.js';
import type { AveragingMode } from '../../src/optimizers/spatial-average.js';
import { onBackend } from '../helpers.js';

/** The update's loop as it was (commit 5d5e278), |D| averaged as there: the reference. */
function referenceUpdate(input: FusedUpdateInput) {
  const { w, g, m, v, diagonal } = input;
  const n = w.size;
  const wv = w.dataSync();
  const gv = g.dataSync();
  const mv = m.dataSync();
  const vv = v.dataSync();
  const d = diagonal == null ? null : averaged(diagonal.dataSync(), w.shape, input.averaging);
  const { beta1, beta2, biasCorrection1: bc1, biasCorrection2: bc2 } = input;
  const { learningRate: lr, epsilon, weightDecay, hessianPower: k } = input;
  const newW = new Float32Array(n);
  const newM = new Float32Array(n);
  const newV = d == null ? vv : new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const mi = Math.fround(mv[i]! * beta1 + gv[i]! * (1 - beta1));
    newM[i] = mi;
    let vi = vv[i]!;
    if (d != null) {
      const di = d[i]!;
      vi = Math.fround(vi * beta2 + di * di * (1 - beta2));
      newV[i] = vi;
    }
    const vHat = vi / bc2;
    const denominator = (k === 1 ? Math.sqrt(vHat) : Math.pow(vHat, k / 2)) + epsilon;
    const direction = mi / bc1 / denominator;
    const wi = wv[i]!;
    const step = weightDecay === 0 ? direction : direction + wi * weightDecay;
    newW[i] = wi - step * lr;
  }
  return { w: newW, m: newM, v: d == null ? null : newV };
}

function averaged(raw: ArrayLike<number>, shape: number[], mode: AveragingMode): Float64Array {
  const n = raw.length;
  const out = new Float64Array(n);
  if (mode === 'none') {
    for (let i = 0; i < n; i++) out[i] = Math.abs(raw[i]!);
    return out;
  }
  if (mode === 'spatial') {
    const pairs = shape[shape.length - 2]! * shape[shape.length - 1]!;
    const positions = n / pairs;
    const mean = new Float64Array(pairs);
    for (let s = 0; s < positions; s++)
      for (let p = 0; p < pairs; p++) mean[p] += Math.abs(raw[s * pairs + p]!);
    for (let p = 0; p < pairs; p++) mean[p] /= positions;
    for (let s = 0; s < positions; s++) out.set(mean, s * pairs);
    return out;
  }
  const rows = shape[0]!;
  const rest = n / rows;
  const mean = new Float64Array(rest);
  for (let start = 0; start < rows; start += mode.blockSize) {
    const end = Math.min(rows, start + mode.blockSize);
    mean.fill(0);
    for (let r = start; r < end; r++)
      for (let j = 0; j < rest; j++) mean[j] += Math.abs(raw[r * rest + j]!);
    for (let j = 0; j < rest; j++) mean[j] /= end - start;
    for (let r = start; r < end; r++) out.set(mean, r * rest);
  }
  return out;
}

function inputFor(
  shape: number[],
  seed: number,
  overrides: Partial<FusedUpdateInput> = {},
): FusedUpdateInput {
  return {
    w: tf.randomNormal(shape, 0, 1, 'float32', seed),
    g: tf.randomNormal(shape, 0, 0.1, 'float32', seed + 1),
    m: tf.randomNormal(shape, 0, 0.05, 'float32', seed + 2),
    v: tf.randomUniform(shape, 0, 0.01, 'float32', seed + 3),
    diagonal: 'diagonal' in overrides ? null : tf.randomNormal(shape, 0, 0.3, 'float32', seed + 4),
    averaging: 'none',
    beta1: 0.9,
    beta2: 0.999,
    biasCorrection1: 1 - 0.9 ** 3,
    biasCorrection2: 1 - 0.999 ** 3,
    learningRate: 0.15,
    epsilon: 1e-4,
    weightDecay: 0,
    hessianPower: 1,
    ...overrides,
  };
}

/** Deterministic values over magnitudes 1e-30..1e30 (some overflow float32 when squared), zeros. */
function spread(n: number, seed: number): Float32Array {
  let state = seed;
  const next = () => (state = (state * 1103515245 + 12345) >>> 0) / 2 ** 32;
  return Float32Array.from({ length: n }, (_, i) => {
    if (i % 11 === 0) return i % 22 === 0 ? 0 : -0;
    return (next() < 0.5 ? -1 : 1) * 10 ** (next() * 60 - 30);
  });
}

const disposeInput = (input: FusedUpdateInput) =>
  tf.dispose([input.w, input.g, input.m, input.v, ...(input.diagonal ? [input.diagonal] : [])]);

describe('fused AdaHessian update (cpu)', () => {
  before(async () => onBackend('cpu'));

  const cases: [string, number[], Partial<FusedUpdateInput>][] = [
    ['dense, no averaging', [40, 30], {}],
    ["an odd length (the SIMD loop's spare lane)", [7, 3], {}],
    ['more than one SIMD chunk', [32768 + 5], {}],
    ['conv kernel, spatial averaging', [3, 3, 4, 6], { averaging: 'spatial' }],
    ['blocks of 3 rows, last one short', [10, 7], { averaging: { blockSize: 3 } }],
    ['k = 0.5 and weight decay', [50], { hessianPower: 0.5, weightDecay: 0.01 }],
    ['no diagonal (a delayed-Hessian step)', [20, 5], { diagonal: null }],
  ];
  for (const [label, shape, overrides] of cases) {
    it(`gives the earlier loop's float32 bits, SIMD and JS: ${label}`, () => {
      for (const simd of [true, false]) sameBits(shape, overrides, simd);
    });
  }

  it("gives the earlier loop's bits on extreme magnitudes and signed zeros, SIMD and JS", () => {
    for (const simd of [true, false]) {
      for (const averaging of ['none', 'spatial'] as const) {
        sameBits([3, 3, 4, 5], { averaging }, simd, true);
      }
    }
  });

  function sameBits(
    shape: number[],
    overrides: Partial<FusedUpdateInput>,
    simd: boolean,
    extreme = false,
  ): void {
    setAdaHessianSimd(simd);
    try {
      const before = tf.memory().numTensors;
      const input = inputFor(shape, 11, overrides);
      if (extreme) {
        const n = input.w.size;
        const swap = (t: tf.Tensor, values: Float32Array) => {
          t.dispose();
          return tf.tensor(values, shape);
        };
        input.w = swap(input.w, spread(n, 1));
        input.g = swap(input.g, spread(n, 2));
        input.m = swap(input.m, spread(n, 3));
        input.v = swap(input.v, spread(n, 4).map(Math.abs));
        input.diagonal = swap(input.diagonal!, spread(n, 5));
      }
      const want = referenceUpdate(input);
      const got = cpuAdaHessianUpdate.update(input)!;
      const what = `${simd ? 'SIMD' : 'JS'} [${shape}]`;
      assert.deepEqual(got.w.dataSync(), want.w, `${what}: w`);
      assert.deepEqual(got.m.dataSync(), want.m, `${what}: m`);
      if (want.v == null) assert.equal(got.v, null);
      else assert.deepEqual(got.v!.dataSync(), want.v, `${what}: v`);
      // What AdaHessian checks after the update: g, D, the new w, m and v.
      const checked = [input.g, ...(input.diagonal ? [input.diagonal] : []), got.w, got.m];
      if (got.v) checked.push(got.v);
      const finite = checked.every((t) => t.dataSync().every(Number.isFinite));
      assert.equal(cpuAdaHessianUpdate.allFinite(checked), finite, what);
      tf.dispose([got.w, got.m, ...(got.v ? [got.v] : [])]);
      disposeInput(input);
      assert.equal(tf.memory().numTensors, before);
    } finally {
      setAdaHessianSimd(true);
    }
  }

  /** allFinite over what AdaHessian checks after the update: g, D, the new w, m and v. */
  const checkedAfter = (input: FusedUpdateInput) => {
    const out = cpuAdaHessianUpdate.update(input)!;
    const produced = [out.w, out.m, ...(out.v ? [out.v] : [])];
    const finite = cpuAdaHessianUpdate.allFinite([
      input.g,
      ...(input.diagonal ? [input.diagonal] : []),
      ...produced,
    ]);
    tf.dispose(produced);
    disposeInput(input);
    return finite;
  };

  it('a non-finite gradient entry makes allFinite false', () => {
    const input = inputFor([6, 5], 21);
    const g = input.g;
    input.g = tf.tidy(() => tf.where(tf.equal(tf.range(0, 30).reshape([6, 5]), 17), NaN, g));
    g.dispose();
    assert.equal(checkedAfter(input), false);
  });

  it('one infinite entry of a spatially averaged diagonal makes allFinite false', () => {
    const input = inputFor([3, 3, 2, 2], 31, { averaging: 'spatial' });
    const d = input.diagonal!;
    input.diagonal = tf.tidy(() =>
      tf.where(tf.equal(tf.range(0, 36).reshape([3, 3, 2, 2]), 5), -Infinity, d),
    );
    d.dispose();
    assert.equal(checkedAfter(input), false);
  });

  it('a new weight finite in float64 but not in float32 makes allFinite false', () => {
    // w - (direction + w * (-1)) * 1 = 2 w - direction: 6e38 overflows float32 only when stored.
    const input = inputFor([4], 41, { weightDecay: -1, learningRate: 1 });
    input.w.dispose();
    input.w = tf.tensor([3e38, 1, 2, 3]);
    assert.equal(checkedAfter(input), false);
  });

  it('the same with the SIMD loop (no weight decay): w + 5.5e35 from 3.4e38', () => {
    const input = inputFor([4], 42);
    tf.dispose([input.w, input.g, input.m, input.v, input.diagonal!]);
    input.w = tf.tensor([3.4e38, 1, 2, 3]);
    input.m = tf.tensor([-1e32, 0, 0, 0]);
    [input.g, input.v, input.diagonal] = [tf.zeros([4]), tf.zeros([4]), tf.zeros([4])];
    assert.equal(checkedAfter(input), false);
  });

  it('finite inputs make allFinite true; a tensor the update did not see is still read', () => {
    assert.equal(checkedAfter(inputFor([8, 4], 51, { averaging: { blockSize: 3 } })), true);
    const input = inputFor([8, 4], 52);
    const out = cpuAdaHessianUpdate.update(input)!;
    const stranger = tf.tensor([1, Infinity]);
    assert.equal(cpuAdaHessianUpdate.allFinite([input.g, out.w, stranger]), false);
    tf.dispose([out.w, out.m, out.v!, stranger]);
    disposeInput(input);
  });
});
