/**
 * The JS kernels the native path adds for the transformer's step (transpose.ts, unary.ts,
 * softmax.ts, reduce.ts, gather.ts, compare.ts) against TF.js's own cpu kernels: bit for bit
 * (the same arithmetic in the same order), on random shapes with odd sizes, broadcasting, and
 * NaN, infinities and -0 where TF.js defines them; each run checks that our kernel really
 * handled the call and that no tensor leaked.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { onBackend } from '../helpers.js';
import { mulberry32 } from '../../src/util/mulberry32.js';
import {
  disableNativeKernels,
  enableNativeKernels,
  nativeKernelStatus,
} from '../../src/native/index.js';
import { onnxRuntimeUnavailableReason } from '../../src/native/onnx-runtime.js';
import { simplifyTranspose } from '../../src/native/kernels/transpose.js';
import { simplifyReduction } from '../../src/native/kernels/reduce.js';
import { ONNX_FROM_COSTLY } from '../../src/native/kernels/unary.js';

const unavailable = onnxRuntimeUnavailableReason();
if (unavailable !== '') console.log(`# transformer kernel tests skipped: ${unavailable}`);

const randInt = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const randShape = (r: () => number, rank: number, max = 7) =>
  Array.from({ length: rank }, () => randInt(r, 1, max));

/** Values in [-3, 3] with, when `special`, NaN, +-Infinity, -0 and 0 sprinkled in. */
function values(r: () => number, n: number, special: boolean): Float32Array {
  const v = Float32Array.from({ length: n }, () => (r() * 2 - 1) * 3);
  if (special) {
    const odd = [NaN, Infinity, -Infinity, -0, 0];
    for (let i = 0; i < n; i += randInt(r, 3, 11)) v[i] = odd[randInt(r, 0, odd.length - 1)]!;
  }
  return v;
}

const same = (a: number, b: number) => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));

/**
 * Runs `f` with TF.js's kernels and with ours; the outputs must be equal bit for bit (NaN as
 * NaN, -0 as -0), our kernels must have handled at least `minCalls` calls, and neither run may
 * leave tensors behind.
 */
function compareExactly(label: string, f: () => tf.Tensor, minCalls = 1): void {
  compareWith(label, f, minCalls, same);
}

/** A few float32 ulps of `want`, plus TF.js's erf approximation's 1.5e-7. */
const closeToFloat32 = (got: number, want: number) =>
  same(got, want) ||
  (Number.isFinite(want) && Math.abs(got - want) <= 4 * 2 ** -23 * Math.abs(want) + 2e-7);

/**
 * As compareExactly, for the ONNX Runtime paths of large inputs: equal to float32 rounding,
 * with NaN and infinities where TF.js has them.
 */
function compareClosely(label: string, f: () => tf.Tensor, minCalls = 1): void {
  compareWith(label, f, minCalls, closeToFloat32);
}

/**
 * For sums of terms that may cancel (batch norm's offset + normalised value): within a few
 * float32 ulps of the output's largest finite magnitude.
 */
function compareToScale(label: string, f: () => tf.Tensor, minCalls = 1): void {
  compareWith(label, f, minCalls, same, (want) => {
    let scale = 0;
    for (const v of want) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
    return (got, w) => same(got, w) || Math.abs(got - w) <= 8 * 2 ** -24 * scale;
  });
}

function compareWith(
  label: string,
  f: () => tf.Tensor,
  minCalls: number,
  agreeElement: (got: number, want: number) => boolean,
  agreeWith?: (
    want: Float32Array | Int32Array | Uint8Array,
  ) => (got: number, want: number) => boolean,
): void {
  disableNativeKernels();
  const start = tf.memory().numTensors;
  const expected = tf.tidy(f);
  const want = { shape: expected.shape, dtype: expected.dtype, data: expected.dataSync().slice() };
  expected.dispose();
  assert.equal(tf.memory().numTensors, start, `${label}: TF.js run leaked`);
  const status = enableNativeKernels({ threads: 1 });
  assert.equal(status.enabled, true, status.reason);
  const actual = tf.tidy(f);
  const calls = nativeKernelStatus().nativeCalls;
  assert.ok(
    calls >= minCalls,
    `${label}: ours handled ${calls} calls (fallbacks ${nativeKernelStatus().fallbackCalls}, last error ${nativeKernelStatus().lastError})`,
  );
  assert.deepEqual(actual.shape, want.shape, `${label}: shape`);
  assert.equal(actual.dtype, want.dtype, `${label}: dtype`);
  const got = actual.dataSync();
  const agree = agreeWith?.(want.data) ?? agreeElement;
  for (let i = 0; i < got.length; i++) {
    if (!agree(got[i]!, want.data[i]!)) {
      assert.fail(`${label}: element ${i} is ${got[i]}, TF.js gives ${want.data[i]}`);
    }
  }
  actual.dispose();
  disableNativeKernels();
  assert.equal(tf.memory().numTensors, start, `${label}: native run leaked`);
}

describe(
  'transformer kernels match TF.js bit for bit (cpu)',
  { skip: unavailable || false },
  () => {
    before(async () => onBackend('cpu'));
    after(() => disableNativeKernels());

    it('simplifies transposes: size-1 axes dropped, adjacent axes merged', () => {
      assert.deepEqual(simplifyTranspose([64, 2, 64, 32], [0, 2, 1, 3]), {
        shape: [64, 2, 64, 32],
        perm: [0, 2, 1, 3],
      });
      assert.deepEqual(simplifyTranspose([4, 1, 5, 6], [2, 3, 1, 0]), {
        shape: [4, 30],
        perm: [1, 0],
      });
      assert.deepEqual(simplifyTranspose([2, 3, 4], [0, 1, 2]), { shape: [24], perm: [0] });
      assert.deepEqual(simplifyTranspose([1, 1], [1, 0]), { shape: [], perm: [] });
    });

    it('Transpose: every permutation of random shapes up to rank 5, and the heads split', () => {
      const r = mulberry32(11);
      const permutations = (n: number): number[][] =>
        n === 0
          ? [[]]
          : permutations(n - 1).flatMap((p) =>
              Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)]),
            );
      for (let rank = 1; rank <= 5; rank++) {
        const perms = permutations(rank);
        for (let trial = 0; trial < Math.min(perms.length, 12); trial++) {
          const perm = perms[randInt(r, 0, perms.length - 1)]!;
          const shape = randShape(r, rank, rank > 3 ? 5 : 40);
          const x = tf.tensor(values(r, tf.util.sizeFromShape(shape), true), shape);
          // tf.transpose clones a rank-1 tensor without a kernel call.
          const calls = rank === 1 ? 0 : 1;
          compareExactly(`transpose [${shape}] by [${perm}]`, () => tf.transpose(x, perm), calls);
          x.dispose();
        }
      }
      // 2-D blocks with ragged edges, and the attention's split and merge.
      for (const [shape, perm] of [
        [
          [67, 45],
          [1, 0],
        ],
        [
          [131, 67],
          [1, 0],
        ],
        [
          [64, 1, 3, 33],
          [3, 1, 0, 2],
        ],
        [
          [3, 37, 2, 33],
          [0, 2, 1, 3],
        ],
        [
          [3, 2, 37, 5],
          [0, 2, 1, 3],
        ],
      ] as [number[], number[]][]) {
        const x = tf.tensor(values(r, tf.util.sizeFromShape(shape), false), shape);
        compareExactly(`transpose [${shape}] by [${perm}]`, () => tf.transpose(x, perm));
        x.dispose();
      }
    });

    it('unary ops on values with NaN, infinities and signed zeros', () => {
      const r = mulberry32(12);
      const ops: [string, (x: tf.Tensor) => tf.Tensor][] = [
        ['neg', tf.neg],
        ['exp', tf.exp],
        ['log', tf.log],
        ['sqrt', tf.sqrt],
        ['rsqrt', tf.rsqrt],
        ['square', tf.square],
        ['abs', tf.abs],
        ['reciprocal', tf.reciprocal],
        ['tanh', tf.tanh],
        ['sigmoid', tf.sigmoid],
        ['erf', tf.erf],
      ];
      for (const [name, op] of ops) {
        // JS below ONNX_FROM_COSTLY elements (bit for bit), ONNX Runtime from there (float32 rounding).
        for (const shape of [[1], [7, 13], [3, 5, 67], [9, 13, 41]]) {
          const x = tf.tensor(values(r, tf.util.sizeFromShape(shape), true), shape);
          const n = tf.util.sizeFromShape(shape);
          const compare = n < ONNX_FROM_COSTLY ? compareExactly : compareClosely;
          compare(`${name} [${shape}]`, () => op(x));
          x.dispose();
        }
      }
    });

    it('Pow with scalar and same-shape exponents; other broadcasts fall back', () => {
      const r = mulberry32(13);
      const shape = [5, 9, 11];
      const n = tf.util.sizeFromShape(shape);
      const x = tf.tensor(values(r, n, true), shape);
      for (const e of [2, 1, 0.5, -0.5, -1.5, 3, 0, NaN, Infinity, -0]) {
        compareExactly(`pow(x, ${e})`, () => tf.pow(x, tf.scalar(e)));
      }
      const e = tf.tensor(values(r, n, true), shape);
      compareExactly('pow(x, e) same shape', () => tf.pow(x, e));
      const row = tf.tensor(values(r, 11, false), [11]);
      compareExactly('pow(x, row) broadcast: TF.js', () => tf.pow(x, row), 0);
      tf.dispose([x, e, row]);
    });

    it('Softmax over the last axis: random rows, NaN, +-Infinity, a masked row', () => {
      const r = mulberry32(14);
      for (const shape of [[1], [3, 1], [4, 7], [2, 3, 5, 17], [3, 37, 41], [2, 2, 30, 64]]) {
        const x = tf.tensor(values(r, tf.util.sizeFromShape(shape), false), shape);
        const compare =
          tf.util.sizeFromShape(shape) < ONNX_FROM_COSTLY ? compareExactly : compareClosely;
        compare(`softmax [${shape}]`, () => tf.softmax(x));
        x.dispose();
      }
      const rows = tf.tensor2d(
        [
          [1, NaN, 2, 3],
          [1, Infinity, 2, 3],
          [-Infinity, -Infinity, -Infinity, -Infinity],
          [1, -Infinity, 2, -1e9],
          [-0, 0, -0, 0],
          [80, 90, 100, -100],
        ],
        [6, 4],
      );
      compareExactly('softmax special rows', () => tf.softmax(rows));
      // The same rows among ONNX_FROM_COSTLY+ elements: ONNX Runtime's Softmax, NaN rows as TF.js's.
      const many = tf.tile(rows, [200, 1]);
      compareClosely('softmax special rows, ONNX', () => tf.softmax(many));
      tf.dispose([rows, many]);
    });
  },
);

describe(
  'transformer kernels match TF.js bit for bit, part 2 (cpu)',
  { skip: unavailable || false },
  () => {
    before(async () => onBackend('cpu'));
    after(() => disableNativeKernels());

    it('Sum, Mean and Max over random axes, with keepDims, NaN and -0', () => {
      const r = mulberry32(21);
      for (let trial = 0; trial < 30; trial++) {
        const rank = randInt(r, 1, 4);
        // Size-1 axes often, as in the sweep's broadcast gradients; 8192+ sums go to ONNX.
        const shape = Array.from({ length: rank }, () => (r() < 0.3 ? 1 : randInt(r, 2, 9)));
        const axes = shape.map((_, i) => i).filter(() => r() < 0.5);
        if (axes.length === 0) axes.push(randInt(r, 0, rank - 1));
        const keepDims = r() < 0.5;
        const x = tf.tensor(values(r, tf.util.sizeFromShape(shape), trial % 2 === 0), shape);
        const label = `[${shape}] axes [${axes}] keepDims ${keepDims}`;
        compareExactly(`sum ${label}`, () => tf.sum(x, axes, keepDims));
        compareExactly(`mean ${label}`, () => tf.mean(x, axes, keepDims));
        compareExactly(`max ${label}`, () => tf.max(x, axes, keepDims));
        x.dispose();
      }
      // A large sum over a size-1 axis is a copy (0 + x: -0 becomes 0 as in TF.js).
      const big = tf.tensor(values(r, 2 * 64 * 70, true), [1, 2, 64, 70]);
      compareExactly('sum [1,2,64,70] over axis 0', () => tf.sum(big, 0));
      compareExactly('mean [1,2,64,70] over its last axis', () => tf.mean(big, -1, true));
      big.dispose();
    });

    it('large Sums go to ONNX Runtime on simplified shapes, to float32 rounding', () => {
      assert.deepEqual(simplifyReduction([4096, 64, 1], [1]), { shape: [4096, 64], axes: [1] });
      assert.deepEqual(simplifyReduction([1, 64, 4096], [1]), { shape: [64, 4096], axes: [0] });
      assert.deepEqual(simplifyReduction([2, 1, 3, 4, 1, 5], [0, 2, 4]), {
        shape: [6, 20],
        axes: [0],
      });
      assert.deepEqual(simplifyReduction([1, 7, 1], [0, 2]), { shape: [7], axes: [] });
      const r = mulberry32(25);
      const cases: [number[], number[]][] = [
        [[300, 37, 1], [1]],
        [[1, 37, 300], [1]],
        [
          [5, 1, 40, 1, 50],
          [0, 2],
        ],
        [
          [5, 1, 40, 1, 50],
          [1, 4],
        ],
        [
          [20, 30, 17],
          [0, 1, 2],
        ],
      ];
      for (const [shape, axes] of cases) {
        const x = tf.tensor(values(r, tf.util.sizeFromShape(shape), false), shape);
        for (const keepDims of [false, true]) {
          // Float32 accumulation in ONNX Runtime, double in TF.js: within 1e-5 of the sums' scale.
          compareWith(
            `sum [${shape}] axes [${axes}] keepDims ${keepDims}`,
            () => tf.sum(x, axes, keepDims),
            1,
            same,
            (want) => {
              let scale = 1;
              for (const v of want) scale = Math.max(scale, Math.abs(v));
              return (got, w) => Math.abs(got - w) <= 1e-5 * scale;
            },
          );
        }
        x.dispose();
      }
    });

    it('comparisons and LogicalAnd with broadcasting; Select', () => {
      const r = mulberry32(22);
      const ops: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor][] = [
        ['equal', tf.equal],
        ['notEqual', tf.notEqual],
        ['greater', tf.greater],
        ['greaterEqual', tf.greaterEqual],
        ['less', tf.less],
        ['lessEqual', tf.lessEqual],
      ];
      const pairs: [number[], number[]][] = [
        [
          [4, 5, 7],
          [4, 5, 1],
        ],
        [
          [9, 1],
          [9, 6],
        ],
        [
          [3, 1, 5],
          [1, 4, 1],
        ],
        [[], [2, 3]],
        [[6], [6]],
      ];
      for (const [aShape, bShape] of pairs) {
        // Few distinct values, so that equal elements are common; NaN and -0 among them.
        const pick = (n: number) =>
          Float32Array.from({ length: n }, () => [0, -0, 1, 2, NaN, -Infinity][randInt(r, 0, 5)]!);
        const a = tf.tensor(pick(tf.util.sizeFromShape(aShape)), aShape);
        const b = tf.tensor(pick(tf.util.sizeFromShape(bShape)), bShape);
        for (const [name, op] of ops) {
          compareExactly(`${name} [${aShape}] [${bShape}]`, () => op(a, b));
        }
        const ai = tf.cast(a, 'int32');
        const bi = tf.cast(b, 'int32');
        compareExactly(`equal int32 [${aShape}] [${bShape}]`, () => tf.equal(ai, bi));
        compareExactly(`logicalAnd [${aShape}] [${bShape}]`, () =>
          tf.logicalAnd(tf.greater(a, 0), tf.lessEqual(b, 1)),
        );
        tf.dispose([a, b, ai, bi]);
      }
      const c = tf.tensor([1, 0, 1, 1, 0, 0], [2, 3], 'bool');
      const t = tf.tensor(values(r, 6, true), [2, 3]);
      const e = tf.tensor(values(r, 6, true), [2, 3]);
      compareExactly('select', () => tf.where(c, t, e));
      tf.dispose([c, t, e]);
    });

    it('Tile and broadcastTo on random shapes and repetitions', () => {
      const r = mulberry32(24);
      for (let trial = 0; trial < 20; trial++) {
        const rank = randInt(r, 1, 4);
        const shape = Array.from({ length: rank }, () => (r() < 0.3 ? 1 : randInt(r, 2, 6)));
        const reps = Array.from({ length: rank }, () => randInt(r, 1, 4));
        const x = tf.tensor(values(r, tf.util.sizeFromShape(shape), true), shape);
        compareExactly(`tile [${shape}] by [${reps}]`, () => tf.tile(x, reps));
        x.dispose();
      }
      // LayerNorm's moments, tiled along the features.
      const m = tf.tensor(values(r, 6 * 5, true), [6, 5, 1]);
      compareExactly('broadcastTo [6,5,1] -> [6,5,33]', () => tf.broadcastTo(m, [6, 5, 33]));
      const column = tf.tensor(values(r, 37, true), [37, 1, 1]);
      compareExactly('tile [37,1,1] by [1,20,1]', () => tf.tile(column, [1, 20, 1]));
      tf.dispose([m, column]);
    });

    it('Pow on repeated values (a tiled tensor) reuses results but not across signed zeros', () => {
      const row = [2, 2, 2, -0, -0, 0, 0, -0, 3, 3, NaN, NaN, Infinity, Infinity, -2, -2, 0.5];
      const x = tf.tensor(row, [row.length]);
      for (const e of [1.5, -1, -1.5, 0.5, 3]) {
        compareExactly(`pow(repeats, ${e})`, () => tf.pow(x, tf.scalar(e)));
      }
      x.dispose();
    });

    it('GatherV2 on any axis; an index out of range still throws TF.js error', () => {
      const r = mulberry32(23);
      const x = tf.tensor(values(r, 7 * 5 * 20, true), [7, 5, 20]);
      for (const axis of [0, 1, 2, -1]) {
        const limit = x.shape[axis < 0 ? 2 : axis]!;
        const ids = tf.tensor2d(
          Int32Array.from({ length: 6 }, () => randInt(r, 0, limit - 1)),
          [2, 3],
          'int32',
        );
        compareExactly(`gather axis ${axis}`, () => tf.gather(x, ids, axis));
        ids.dispose();
      }
      enableNativeKernels({ threads: 1 });
      const bad = tf.tensor1d([0, 7], 'int32');
      assert.throws(() => tf.gather(x, bad), /index/i);
      disableNativeKernels();
      tf.dispose([x, bad]);
    });
  },
);

describe('FusedBatchNorm as an ONNX graph (cpu)', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));
  after(() => disableNativeKernels());

  it('matches TF.js to float32 rounding: per-channel, full-size (LayerNorm), no scale or offset', () => {
    const r = mulberry32(31);
    const shape = [2, 9, 11, 48];
    const n = tf.util.sizeFromShape(shape);
    const x = tf.tensor(values(r, n, true), shape);
    const positive = (s: number[]) =>
      tf.tensor(
        values(r, tf.util.sizeFromShape(s), false).map((v) => Math.abs(v)),
        s,
      );
    for (const p of [[48], [1, 1, 1, 48], [9, 11, 48], shape]) {
      const [mean, scale, offset] = [0, 1, 2].map(() =>
        tf.tensor(values(r, tf.util.sizeFromShape(p), false), p),
      );
      const variance = positive(p);
      compareToScale(`batchNorm params [${p}]`, () =>
        tf.batchNorm(x, mean!, variance, offset, scale, 1e-3),
      );
      compareToScale(`batchNorm params [${p}] without scale and offset`, () =>
        tf.batchNorm(x, mean!, variance),
      );
      tf.dispose([mean!, scale!, offset!, variance]);
    }
    // TF.js cycles [11, 1] over the flat values, which is not broadcasting: left to TF.js.
    const odd = tf.tensor(values(r, 11, false), [11, 1]);
    compareToScale('batchNorm params [11, 1]: TF.js', () => tf.batchNorm(x, odd, tf.abs(odd)), 0);
    tf.dispose([x, odd]);
  });
});
