/**
 * Adam's per-element update (first-order-update.ts) as a WebAssembly SIMD loop, four float32
 * lanes at a time. The JS loop needs a Math.fround after every operation to round as TF.js's
 * float32 ops do, and runs at ~18 ns an element (~4 ms of a small-CNN step of ~55); WebAssembly
 * has float32 arithmetic itself. Its f32x4 add, mul, div and sqrt are IEEE 754 single-precision
 * operations, correctly rounded, which is what each fround(double op of float32 operands) gives
 * (a double holds such a result exactly enough that rounding it once more to float32 is the
 * correctly rounded float32 result), so the bits are the JS loop's, and TF.js's ops'
 * (test/native/adam-simd.test.ts). Values are copied through the module's own memory in chunks
 * of CHUNK elements, which bounds that memory at 1 MiB.
 *
 * The module is written out byte by byte below (no toolchain in this project); where
 * WebAssembly SIMD is missing, `adamSimd()` is null and the JS loop runs.
 */

import {
  F32,
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
  STORE,
  V128,
} from './wasm-module.js';

/** Elements per chunk: 4 regions (w, g, m, v) of this many float32 values in the memory. */
const CHUNK = 65536;
const REGION = CHUNK * 4;

/** The scalars of one Adam update, each already a float32 value (Math.fround). */
export interface AdamScalars {
  beta1: number;
  oneMinusBeta1: number;
  beta2: number;
  oneMinusBeta2: number;
  /** 1 - beta1^t and 1 - beta2^t. */
  biasCorrection1: number;
  biasCorrection2: number;
  epsilon: number;
  negativeLearningRate: number;
}

export interface AdamSimd {
  /** Writes the new w, m and v of `n` elements into `out*` (which may not alias the inputs). */
  update(
    w: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    outW: Float32Array,
    outM: Float32Array,
    outV: Float32Array,
    s: AdamScalars,
  ): void;
}

const SPLAT = SIMD(0x13); // f32x4.splat
const SQRT = SIMD(0xe3);
const ADD = SIMD(0xe4);
const MUL = SIMD(0xe6);
const DIV = SIMD(0xe7);

/**
 * adam(n, pw, pg, pm, pv, b1, ob1, b2, ob2, a1, a2, eps, negLr): for each of n elements (a
 * multiple of 4) at byte offsets pw, pg, pm, pv, in place:
 *   m = m*b1 + g*ob1;  v = v*b2 + (g*g)*ob2;  w = ((m/a1) / (sqrt(v/a2) + eps)) * negLr + w
 * each operation rounded to float32, in the order of first-order-update.ts's JS loop.
 */
function moduleBytes(): Uint8Array<ArrayBuffer> {
  // Parameters 0..12; locals 13 i, 14 end, 15..22 the scalars splatted, 23 g, 24 m, 25 v, 26 den.
  const [N, PW, PG, PM, PV] = [0, 1, 2, 3, 4];
  const [I, END] = [13, 14];
  const [B1, OB1, B2, OB2, A1, A2, EPS, NLR] = [15, 16, 17, 18, 19, 20, 21, 22];
  const [G, M, V, DEN] = [23, 24, 25, 26];
  const at = (p: number) => [...get(p), ...get(I), ...I32_ADD];
  // prettier-ignore
  const code = [
    ...[0, 1, 2, 3, 4, 5, 6, 7].flatMap((k) => [...get(5 + k), ...SPLAT, ...set(B1 + k)]),
    ...get(N), ...i32Const(2), ...I32_SHL, ...set(END), // end = 4 n bytes
    ...i32Const(0), ...set(I),
    0x02, 0x40, // block
    0x03, 0x40, // loop
    ...get(I), ...get(END), ...I32_GE_U, 0x0d, 1, // br_if 1: done
    ...at(PG), ...LOAD, ...set(G),
    ...at(PM), ...LOAD, ...get(B1), ...MUL, ...get(G), ...get(OB1), ...MUL, ...ADD, ...set(M),
    ...at(PV), ...LOAD, ...get(B2), ...MUL,
    ...get(G), ...get(G), ...MUL, ...get(OB2), ...MUL, ...ADD, ...set(V),
    ...get(V), ...get(A2), ...DIV, ...SQRT, ...get(EPS), ...ADD, ...set(DEN),
    ...at(PM), ...get(M), ...STORE,
    ...at(PV), ...get(V), ...STORE,
    ...at(PW),
    ...get(M), ...get(A1), ...DIV, ...get(DEN), ...DIV, ...get(NLR), ...MUL,
    ...at(PW), ...LOAD, ...ADD,
    ...STORE,
    ...get(I), ...i32Const(16), ...I32_ADD, ...set(I),
    0x0c, 0, // br 0
    0x0b, // end loop
    0x0b, // end block
    0x0b, // end function
  ];
  // (i32 x 5, f32 x 8) -> ()
  return oneFunctionModule({
    exportName: 'adam',
    params: [...new Array<number>(5).fill(I32), ...new Array<number>(8).fill(F32)],
    locals: [
      [2, I32],
      [12, V128],
    ],
    code,
    pages: Math.ceil((4 * REGION) / 65536),
  });
}

let made: AdamSimd | null | undefined;

/** The SIMD update, or null where WebAssembly SIMD is not available. */
export function adamSimd(): AdamSimd | null {
  if (made !== undefined) return made;
  made = null;
  try {
    const { memory, run: adam } = instantiateOneFunction(moduleBytes(), 'adam');
    const heap = new Float32Array(memory.buffer);
    const [w0, g0, m0, v0] = [0, 1, 2, 3].map((k) => k * CHUNK);
    made = {
      update(w, g, m, v, outW, outM, outV, s) {
        const n = w.length;
        for (let start = 0; start < n; start += CHUNK) {
          const count = Math.min(CHUNK, n - start);
          const end = start + count;
          heap.set(w.subarray(start, end), w0);
          heap.set(g.subarray(start, end), g0);
          heap.set(m.subarray(start, end), m0);
          heap.set(v.subarray(start, end), v0);
          // Lanes past `count` compute on stale values and are never read.
          adam(
            Math.ceil(count / 4) * 4,
            w0 * 4,
            g0 * 4,
            m0 * 4,
            v0 * 4,
            s.beta1,
            s.oneMinusBeta1,
            s.beta2,
            s.oneMinusBeta2,
            s.biasCorrection1,
            s.biasCorrection2,
            s.epsilon,
            s.negativeLearningRate,
          );
          outW.set(heap.subarray(w0, w0 + count), start);
          outM.set(heap.subarray(m0, m0 + count), start);
          outV.set(heap.subarray(v0, v0 + count), start);
        }
      },
    };
  } catch {
    made = null;
  }
  return made;
}
