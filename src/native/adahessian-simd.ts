/**
 * AdaHessian's fused update (adahessian-update.ts) as a WebAssembly SIMD loop, two float64
 * lanes at a time, for its common case: hessianPower 1, no weight decay, a new diagonal. The
 * JS loop computes in float64 and rounds m, v and w to float32 where the tensor ops store them;
 * WebAssembly's f64x2 add, sub, mul, div and sqrt are the same IEEE double operations, and
 * f32x4.demote_f64x2_zero then f64x2.promote_low_f32x4 is Math.fround, so the bits are the JS
 * loop's (test/native/adahessian-simd.test.ts). Like adam-simd.ts (which explains the byte
 * encoding), the loop works on the module's own memory; the new values are stored as float32
 * (demoted from float64 values that are float32 already: exact). The loop also sums x - x over
 * g, |D|, and the new m, v and w: 0 while all are finite (the update's finiteness check).
 *
 * Operands in the memory: the update's new w, m and v are written into arrays that live in
 * it (`resident`, recycled-arrays.ts's takeResidentArray), so on the next step w, m and v are
 * read where they are and the new values written in place: the loop gets each operand's
 * address. Operands elsewhere (the step graph's g and D, an array someone else read, a model
 * larger than the memory) are copied through staging regions in chunks, as before; the bits
 * are the same either way. The memory is never grown (that would detach the arrays' views):
 * when it is full, new arrays are plain ones. Each resident array has four float32 of slack
 * after it: the loop reads and writes whole lane pairs, two float32 at a time as four.
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
import type { ResidentArrays } from './recycled-arrays.js';

const CHUNK = 32768;
/**
 * Byte offsets of the staging regions (float32 inputs, |D| as float64, float32 outputs) and
 * the sum. The outputs are float32 (demoted in the loop, exactly: they hold float32 values) so
 * that copying them out is a memcpy; as float64 the three conversions in JS cost ~1 ms of a
 * small CNN's 207k-parameter step, more than the loop's own arithmetic.
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
/** Where resident arrays start, and the room for them (a small CNN's take ~5 MB). */
const HEAP = AT.sum + 16;
const HEAP_BYTES = 32 * 1024 * 1024;
const PAGES = Math.ceil((HEAP + HEAP_BYTES) / 65536);

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
  /**
   * Fills the new w, m, v; returns whether every g, |D| and new value was finite. Operands
   * that are `resident` arrays are read or written in place.
   */
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
 * update(n, w, g, m, v, d, outW, outM, outV, b1, ob1, b2, ob2, bc1, bc2, lr, eps): n elements
 * (a multiple of 2) from and to the given byte addresses; `rawDiagonal`: |D| is the absolute
 * value of d's float32 values, else d holds |D| as float64 values.
 */
function moduleBytes(rawDiagonal: boolean): Uint8Array<ArrayBuffer> {
  // Parameters: 0 n, 1..8 the addresses, 9..16 the scalars. Locals: 17 o4, 18 o8, 19 end,
  // 20..27 the scalars splatted, 28 g, 29 m, 30 d, 31 v, 32 den, 33 w, 34 acc.
  const N = 0;
  const [PW, PG, PM, PV, PD, POW, POM, POV] = [1, 2, 3, 4, 5, 6, 7, 8];
  const [O4, O8, END] = [17, 18, 19];
  const [B1, OB1, B2, OB2, BC1, BC2, LR, EPS] = [20, 21, 22, 23, 24, 25, 26, 27];
  const [G, M, D, V, DEN, W, ACC] = [28, 29, 30, 31, 32, 33, 34];
  const f32At = (p: number) => [...get(p), ...get(O4), ...I32_ADD];
  const loadD = rawDiagonal
    ? [...f32At(PD), ...LOAD, ...PROMOTE, ...ABS]
    : [...get(PD), ...get(O8), ...I32_ADD, ...LOAD];
  // prettier-ignore
  const code = [
    ...[0, 1, 2, 3, 4, 5, 6, 7].flatMap((k) => [...get(9 + k), ...SPLAT, ...set(B1 + k)]),
    ...get(N), ...i32Const(2), ...I32_SHL, ...set(END),
    0x02, 0x40, 0x03, 0x40, // block, loop
    ...get(O4), ...get(END), ...I32_GE_U, 0x0d, 1, // br_if 1: done
    ...f32At(PG), ...LOAD, ...PROMOTE, ...set(G),
    ...f32At(PM), ...LOAD, ...PROMOTE, ...get(B1), ...MUL, ...get(G), ...get(OB1), ...MUL,
    ...ADD, ...ROUND, ...set(M),
    ...loadD, ...set(D),
    ...f32At(PV), ...LOAD, ...PROMOTE, ...get(B2), ...MUL,
    ...get(D), ...get(D), ...MUL, ...get(OB2), ...MUL, ...ADD, ...ROUND, ...set(V),
    ...get(V), ...get(BC2), ...DIV, ...SQRT, ...get(EPS), ...ADD, ...set(DEN),
    ...f32At(PW), ...LOAD, ...PROMOTE,
    ...get(M), ...get(BC1), ...DIV, ...get(DEN), ...DIV, ...get(LR), ...MUL, ...SUB, ...ROUND,
    ...set(W),
    // Two float32 and two zeros: the next pair overwrites the zeros (there is slack after).
    ...f32At(POW), ...get(W), ...DEMOTE, ...STORE,
    ...f32At(POM), ...get(M), ...DEMOTE, ...STORE,
    ...f32At(POV), ...get(V), ...DEMOTE, ...STORE,
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
    params: [I32, ...new Array<number>(8).fill(I32), ...new Array<number>(8).fill(F64T)],
    locals: [
      [3, I32],
      [15, V128],
    ],
    code,
    pages: PAGES,
    importMemory: true,
  });
}

/**
 * The resident arrays: views of the memory past the staging regions, handed out from free
 * lists by length, else carved from the room left (never given back to it: a training loop
 * asks for the same few lengths again and again).
 */
function residentArrays(memory: WebAssembly.Memory): ResidentArrays {
  const buffer = memory.buffer;
  const free = new Map<number, Float32Array[]>();
  let next = HEAP;
  return {
    take(length) {
      const reused = free.get(length)?.pop();
      if (reused != null) return reused;
      // Four float32 of slack (see above), kept at 16-byte alignment.
      const bytes = Math.ceil((length + 4) / 4) * 16;
      if (length === 0 || next + bytes > buffer.byteLength) return null;
      const array = new Float32Array(buffer, next, length);
      next += bytes;
      return array;
    },
    giveBack(values) {
      const list = free.get(values.length) ?? [];
      list.push(values);
      free.set(values.length, list);
    },
    holds: (values) => values.buffer === buffer,
  };
}

let made:
  { raw: AdaHessianSimd; averaged: AdaHessianSimd; resident: ResidentArrays } | null | undefined;

function instantiate(rawDiagonal: boolean, memory: WebAssembly.Memory): AdaHessianSimd {
  const { run } = instantiateOneFunction(moduleBytes(rawDiagonal), 'update', memory);
  const buffer = memory.buffer;
  const f32 = (at: number) => new Float32Array(buffer, at, CHUNK + 4);
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
  const d64 = new Float64Array(buffer, AT.d64, CHUNK + 2);
  const sum = new Float64Array(buffer, AT.sum, 2);
  const all32 = new Float32Array(buffer);
  const inMemory = (a: Float32Array | Float64Array) => a.buffer === buffer;
  /**
   * The address of `count` elements of `source` from `start`: where they are if `source` is
   * in the memory (only float32 arrays are), else in `staging` after copying them there. The
   * spare lane of an odd count reads a zero (the staging region's, or the resident array's
   * slack), so that it stays finite and the sum says "finite" (else allFinite reads them all).
   */
  const input = (
    source: Float32Array | Float64Array,
    staging: Float32Array | Float64Array,
    start: number,
    count: number,
  ): number => {
    const odd = (count & 1) === 1;
    if (inMemory(source)) {
      const at = source.byteOffset + start * 4;
      if (odd) all32[at / 4 + count] = 0;
      return at;
    }
    staging.set(source.subarray(start, start + count));
    if (odd) staging[count] = 0;
    return staging.byteOffset;
  };
  return {
    update(input_, newW, newM, newV) {
      const n = input_.w.length;
      const { diagonal } = input_;
      let finite = true;
      for (let start = 0; start < n; start += CHUNK) {
        const count = Math.min(CHUNK, n - start);
        const padded = Math.ceil(count / 2) * 2;
        const out = (target: Float32Array, staging: Float32Array) =>
          inMemory(target) ? target.byteOffset + start * 4 : staging.byteOffset;
        run(
          padded,
          input(input_.w, w!, start, count),
          input(input_.g, g!, start, count),
          input(input_.m, m!, start, count),
          input(input_.v, v!, start, count),
          input(diagonal, rawDiagonal ? d32! : d64, start, count),
          out(newW, outW!),
          out(newM, outM!),
          out(newV, outV!),
          input_.beta1,
          1 - input_.beta1,
          input_.beta2,
          1 - input_.beta2,
          input_.biasCorrection1,
          input_.biasCorrection2,
          input_.learningRate,
          input_.epsilon,
        );
        if (!inMemory(newW)) newW.set(outW!.subarray(0, count), start);
        if (!inMemory(newM)) newM.set(outM!.subarray(0, count), start);
        if (!inMemory(newV)) newV.set(outV!.subarray(0, count), start);
        if (sum[0]! + sum[1]! !== 0) finite = false;
      }
      return finite;
    },
  };
}

/**
 * The SIMD update for a raw diagonal (no averaging) or an averaged |D|, and the arrays that
 * live in their memory, or null where WebAssembly SIMD is not available.
 */
export function adaHessianSimd(): {
  raw: AdaHessianSimd;
  averaged: AdaHessianSimd;
  resident: ResidentArrays;
} | null {
  if (made !== undefined) return made;
  try {
    const memory = new WebAssembly.Memory({ initial: PAGES, maximum: PAGES });
    made = {
      raw: instantiate(true, memory),
      averaged: instantiate(false, memory),
      resident: residentArrays(memory),
    };
  } catch {
    made = null;
  }
  return made;
}
