/**
 * AdaHessian's fused update (adahessian-update.ts) as a WebAssembly SIMD loop, two float64
 * lanes at a time, for its common case: hessianPower 1, no weight decay, a new diagonal. The
 * JS loop computes in float64 and rounds m, v and w to float32 where the tensor ops store them;
 * WebAssembly's f64x2 add, sub, mul, div and sqrt are the same IEEE double operations, and
 * f32x4.demote_f64x2_zero then f64x2.promote_low_f32x4 is Math.fround, so the bits are the JS
 * loop's (test/native/adahessian-simd.test.ts). Like adam-simd.ts (which explains the byte
 * encoding), values go through the module's own memory in chunks; the new values come back as
 * float32 (demoted from float64 values that are float32 already: exact). The loop also sums x - x
 * over g, |D|, and the new m, v and w: 0 while all are finite (the update's finiteness check).
 */

import {
  F64 as F64T,
  get,
  I32,
  I32_ADD,
  I32_GE_U,
  I32_SHL,
  i32Const,
  instantiateOneFunction,
  LOAD,
  oneFunctionModule,
  set,
  SIMD,
  sleb,
  STORE,
  V128,
} from './wasm-module.js';

const CHUNK = 32768;
/**
 * Byte offsets of the regions (float32 inputs, |D| as float64, float32 outputs, the sum). The
 * outputs are float32 (demoted in the loop, exactly: they hold float32 values) so that copying
 * them out is a memcpy; as float64 the three conversions in JS cost ~1 ms of a small CNN's
 * 207k-parameter step, more than the loop's own arithmetic.
 */
const F32 = CHUNK * 4 + 16;
const F64 = CHUNK * 8 + 16;
const AT = {
  w: 0,
  g: F32,
  m: 2 * F32,
  v: 3 * F32,
  d32: 4 * F32,
  d64: 5 * F32,
  outW: 5 * F32 + F64,
  outM: 6 * F32 + F64,
  outV: 7 * F32 + F64,
  sum: 8 * F32 + F64,
};
const BYTES = AT.sum + 16;

export interface AdaHessianSimdInput {
  w: Float32Array;
  g: Float32Array;
  m: Float32Array;
  v: Float32Array;
  /** The raw diagonal (|D| taken here, no averaging), or |D| already averaged. */
  diagonal: Float32Array | Float64Array;
  beta1: number;
  beta2: number;
  biasCorrection1: number;
  biasCorrection2: number;
  learningRate: number;
  epsilon: number;
}

export interface AdaHessianSimd {
  /** Fills the new w, m, v; returns whether every g, |D| and new value was finite. */
  update(
    input: AdaHessianSimdInput,
    outW: Float32Array,
    outM: Float32Array,
    outV: Float32Array,
  ): boolean;
}

const SPLAT = SIMD(0x14); // f64x2.splat
const DEMOTE = SIMD(0x5e); // f32x4.demote_f64x2_zero
const PROMOTE = SIMD(0x5f); // f64x2.promote_low_f32x4
const ROUND = [...DEMOTE, ...PROMOTE]; // to float32 and back: Math.fround
const ABS = SIMD(0xec);
const SQRT = SIMD(0xef);
const ADD = SIMD(0xf0);
const SUB = SIMD(0xf1);
const MUL = SIMD(0xf2);
const DIV = SIMD(0xf3);

/**
 * update(n, b1, ob1, b2, ob2, bc1, bc2, lr, eps) over the fixed regions, n a multiple of 2;
 * `rawDiagonal`: |D| is the absolute value of d32's float32 values, else d64's float64 values.
 */
function moduleBytes(rawDiagonal: boolean): Uint8Array<ArrayBuffer> {
  // Parameters: 0 n, 1..8 the scalars. Locals: 9 o4, 10 o8, 11 end, 12..19 the scalars
  // splatted, 20 g, 21 m, 22 d, 23 v, 24 den, 25 w, 26 acc.
  const N = 0;
  const [O4, O8, END] = [9, 10, 11];
  const [B1, OB1, B2, OB2, BC1, BC2, LR, EPS] = [12, 13, 14, 15, 16, 17, 18, 19];
  const [G, M, D, V, DEN, W, ACC] = [20, 21, 22, 23, 24, 25, 26];
  const f32At = (base: number) => [
    ...get(O4),
    ...(base === 0 ? [] : [0x41, ...sleb(base), ...I32_ADD]),
  ];
  const f64At = (base: number) => [...get(O8), 0x41, ...sleb(base), ...I32_ADD];
  const loadD = rawDiagonal
    ? [...f32At(AT.d32), ...LOAD, ...PROMOTE, ...ABS]
    : [...f64At(AT.d64), ...LOAD];
  // prettier-ignore
  const code = [
    ...[0, 1, 2, 3, 4, 5, 6, 7].flatMap((k) => [...get(1 + k), ...SPLAT, ...set(B1 + k)]),
    ...get(N), ...i32Const(2), ...I32_SHL, ...set(END),
    0x02, 0x40, 0x03, 0x40, // block, loop
    ...get(O4), ...get(END), ...I32_GE_U, 0x0d, 1, // br_if 1: done
    ...f32At(AT.g), ...LOAD, ...PROMOTE, ...set(G),
    ...f32At(AT.m), ...LOAD, ...PROMOTE, ...get(B1), ...MUL, ...get(G), ...get(OB1), ...MUL,
    ...ADD, ...ROUND, ...set(M),
    ...loadD, ...set(D),
    ...f32At(AT.v), ...LOAD, ...PROMOTE, ...get(B2), ...MUL,
    ...get(D), ...get(D), ...MUL, ...get(OB2), ...MUL, ...ADD, ...ROUND, ...set(V),
    ...get(V), ...get(BC2), ...DIV, ...SQRT, ...get(EPS), ...ADD, ...set(DEN),
    ...f32At(AT.w), ...LOAD, ...PROMOTE,
    ...get(M), ...get(BC1), ...DIV, ...get(DEN), ...DIV, ...get(LR), ...MUL, ...SUB, ...ROUND,
    ...set(W),
    // Two float32 and two zeros: the next pair overwrites the zeros (the regions have room).
    ...f32At(AT.outW), ...get(W), ...DEMOTE, ...STORE,
    ...f32At(AT.outM), ...get(M), ...DEMOTE, ...STORE,
    ...f32At(AT.outV), ...get(V), ...DEMOTE, ...STORE,
    ...get(ACC), ...get(G), ...get(G), ...SUB, ...ADD, ...get(M), ...get(M), ...SUB, ...ADD,
    ...get(D), ...get(D), ...SUB, ...ADD, ...get(V), ...get(V), ...SUB, ...ADD,
    ...get(W), ...get(W), ...SUB, ...ADD, ...set(ACC),
    ...get(O4), ...i32Const(8), ...I32_ADD, ...set(O4),
    ...get(O8), ...i32Const(16), ...I32_ADD, ...set(O8),
    0x0c, 0, // br 0
    0x0b, 0x0b, // end loop, end block
    0x41, ...sleb(AT.sum), ...get(ACC), ...STORE,
    0x0b, // end function
  ];
  return oneFunctionModule({
    exportName: 'update',
    params: [I32, ...new Array<number>(8).fill(F64T)],
    locals: [
      [3, I32],
      [15, V128],
    ],
    code,
    pages: Math.ceil(BYTES / 65536),
  });
}

let made: { raw: AdaHessianSimd; averaged: AdaHessianSimd } | null | undefined;

function instantiate(rawDiagonal: boolean): AdaHessianSimd {
  const { memory, run } = instantiateOneFunction(moduleBytes(rawDiagonal), 'update');
  const buffer = memory.buffer;
  const f32 = (at: number) => new Float32Array(buffer, at, CHUNK + 4);
  const f64 = (at: number) => new Float64Array(buffer, at, CHUNK + 2);
  const [w, g, m, v, d32, outW, outM, outV] = [
    AT.w,
    AT.g,
    AT.m,
    AT.v,
    AT.d32,
    AT.outW,
    AT.outM,
    AT.outV,
  ].map(f32);
  const d64 = f64(AT.d64);
  const sum = new Float64Array(buffer, AT.sum, 2);
  return {
    update(input, newW, newM, newV) {
      const n = input.w.length;
      let finite = true;
      for (let start = 0; start < n; start += CHUNK) {
        const count = Math.min(CHUNK, n - start);
        const end = start + count;
        const padded = Math.ceil(count / 2) * 2;
        w!.set(input.w.subarray(start, end));
        g!.set(input.g.subarray(start, end));
        m!.set(input.m.subarray(start, end));
        v!.set(input.v.subarray(start, end));
        (rawDiagonal ? d32! : d64!).set(input.diagonal.subarray(start, end));
        if (padded > count) {
          // The last lane pair's spare lane: zeros, so that it stays finite.
          for (const r of [w!, g!, m!, v!, rawDiagonal ? d32! : d64!]) r[count] = 0;
        }
        run(
          padded,
          input.beta1,
          1 - input.beta1,
          input.beta2,
          1 - input.beta2,
          input.biasCorrection1,
          input.biasCorrection2,
          input.learningRate,
          input.epsilon,
        );
        newW.set(outW!.subarray(0, count), start);
        newM.set(outM!.subarray(0, count), start);
        newV.set(outV!.subarray(0, count), start);
        if (sum[0]! + sum[1]! !== 0) finite = false;
      }
      return finite;
    },
  };
}

/**
 * The SIMD update for a raw diagonal (no averaging) or an averaged |D|, or null where
 * WebAssembly SIMD is not available.
 */
export function adaHessianSimd(): { raw: AdaHessianSimd; averaged: AdaHessianSimd } | null {
  if (made !== undefined) return made;
  try {
    made = { raw: instantiate(true), averaged: instantiate(false) };
  } catch {
    made = null;
  }
  return made;
}
