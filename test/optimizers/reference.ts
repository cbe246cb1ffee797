/**
 * A plain-number (float64, explicit loops) re-implementation of ALGORITHMS.md section 3, to
 * check the optimizer against. It shares no code with src/optimizers except the probe
 * generator (whose sequence the optimizer promises to follow).
 */
export type Mode = 'none' | 'spatial' | { blockSize: number };

export interface RefVar {
  shape: number[];
  w: number[];
  m: number[];
  v: number[];
  mode: Mode;
}

export interface RefConfig {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  k: number;
}

/** Mean of |d| over each entry's block, in TF.js's channels-last layouts. */
export function refAverage(d: number[], shape: number[], mode: Mode): number[] {
  const a = d.map(Math.abs);
  if (mode === 'none') return a;
  const out = new Array<number>(a.length).fill(0);
  if (mode === 'spatial') {
    // [s_0, ..., s_{r-3}, in, out]: one mean per (in, out) over the leading (spatial) positions.
    const channels = shape[shape.length - 2]! * shape[shape.length - 1]!;
    const positions = a.length / channels;
    for (let c = 0; c < channels; c++) {
      let s = 0;
      for (let p = 0; p < positions; p++) s += a[p * channels + c]!;
      for (let p = 0; p < positions; p++) out[p * channels + c] = s / positions;
    }
    return out;
  }
  const n = shape[0]!;
  const rest = a.length / n;
  for (let r = 0; r < rest; r++) {
    for (let start = 0; start < n; start += mode.blockSize) {
      const end = Math.min(n, start + mode.blockSize);
      let s = 0;
      for (let i = start; i < end; i++) s += a[i * rest + r]!;
      for (let i = start; i < end; i++) out[i * rest + r] = s / (end - start);
    }
  }
  return out;
}

/**
 * One step at 1-based step t with n Hessian updates so far (including this one when diag is
 * given): updates w, m, v in place.
 */
export function refStep(
  x: RefVar,
  g: number[],
  diag: number[] | null,
  t: number,
  n: number,
  c: RefConfig,
): void {
  const D = diag ? refAverage(diag, x.shape, x.mode) : null;
  for (let i = 0; i < x.w.length; i++) {
    x.m[i] = c.beta1 * x.m[i]! + (1 - c.beta1) * g[i]!;
    if (D) x.v[i] = c.beta2 * x.v[i]! + (1 - c.beta2) * D[i]! * D[i]!;
    const mHat = x.m[i]! / (1 - c.beta1 ** t);
    const vHat = Math.sqrt(x.v[i]! / (1 - c.beta2 ** n));
    x.w[i] = x.w[i]! - c.lr * (mHat / (vHat ** c.k + c.eps) + c.weightDecay * x.w[i]!);
  }
}

/** A x for a dense row-major n x n matrix. */
export function matVec(A: number[], x: number[]): number[] {
  const n = x.length;
  return Array.from({ length: n }, (_, i) => {
    let s = 0;
    for (let j = 0; j < n; j++) s += A[i * n + j]! * x[j]!;
    return s;
  });
}

/** A small deterministic PRNG for test data (not the optimizer's). */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}
