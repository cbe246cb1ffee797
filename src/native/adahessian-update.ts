/**
 * The AdaHessian update for the cpu backend as typed-array loops (installed by
 * enableNativeKernels): one pass per variable in float64, results stored as float32, instead
 * of ~15 tensor ops. The cpu backend's tensors are JS typed arrays, so reading them
 * (dataSync) copies nothing. The order of operations follows AdaHessian's ops (moments.ts,
 * spatial-average.ts), and the state m, v is rounded to float32 where the ops store it.
 */
import type * as tf from '@tensorflow/tfjs';
import type {
  FusedAdaHessianUpdate,
  FusedUpdateInput,
  FusedUpdateOutput,
} from '../optimizers/fused-update.js';
import type { AveragingMode } from '../optimizers/spatial-average.js';
import { adaHessianSimd } from './adahessian-simd.js';
import { recycledTensor, takeResidentArray, valuesForUpdate } from './recycled-arrays.js';

// Reads that keep nothing, and new arrays from the step's disposed ones (recycled-arrays.ts).
const values = valuesForUpdate;

/** Whether the update runs as WebAssembly SIMD where it can (tests compare both ways). */
let useSimd = true;
export function setAdaHessianSimd(on: boolean): void {
  useSimd = on;
}

/**
 * Tensors `update` found finite in its own pass (its g and diagonal, its new w, m and v), which
 * `allFinite` then need not read again: AdaHessian checks exactly those (and the loss) after the
 * updates, and a second pass over them cost ~3 ms of a small-CNN step. Tensors do not change
 * values, so a tensor found finite stays finite.
 */
const knownFinite = new WeakSet<tf.Tensor>();

export const cpuAdaHessianUpdate: FusedAdaHessianUpdate = {
  allFinite(tensors) {
    for (const t of tensors) {
      if (knownFinite.has(t)) continue;
      const x = values(t);
      for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) return false;
    }
    return true;
  },

  update(input: FusedUpdateInput): FusedUpdateOutput | null {
    const { w, g, m, v, diagonal } = input;
    const tensors = diagonal == null ? [w, g, m, v] : [w, g, m, v, diagonal];
    if (!tensors.every((t) => t.dtype === 'float32' && t.size === w.size)) return null;
    const n = w.size;
    const wv = values(w);
    const gv = values(g);
    const mv = values(m);
    const vv = values(v);
    // |D| with no averaging is read in the loop (no Float64Array of it): the same values.
    const raw = diagonal == null ? null : values(diagonal);
    const d =
      raw == null || input.averaging === 'none' ? null : averagedAbs(raw, w.shape, input.averaging);
    const { beta1, beta2, biasCorrection1: bc1, biasCorrection2: bc2 } = input;
    const { learningRate: lr, epsilon, weightDecay, hessianPower: k } = input;
    // The common case as WebAssembly SIMD, the same bits (adahessian-simd.ts); else the loop.
    const simd = useSimd && raw != null && k === 1 && weightDecay === 0 ? adaHessianSimd() : null;
    // Pooled arrays hold old values: every element is written below (SIMD or loop). The SIMD
    // loop's new w, m, v live in its memory, where the next step's update reads them.
    const resident = simd?.resident ?? null;
    const newW = takeResidentArray(n, resident);
    const newM = takeResidentArray(n, resident);
    const newV = raw == null ? vv : takeResidentArray(n, resident);
    // x - x is 0 for a finite x and NaN otherwise: `sum` stays 0 while every g, |D| (averaged:
    // a sum of magnitudes, non-finite iff one of them is) and new w, m and v is finite.
    let sum = 0;
    if (simd != null) {
      const finite = (d == null ? simd.raw : simd.averaged).update(
        {
          w: wv,
          g: gv,
          m: mv,
          v: vv,
          diagonal: d ?? raw!,
          beta1,
          beta2,
          biasCorrection1: bc1,
          biasCorrection2: bc2,
          learningRate: lr,
          epsilon,
        },
        newW,
        newM,
        newV,
      );
      if (!finite) sum = NaN;
    }
    for (let i = 0; simd == null && i < n; i++) {
      const gi = gv[i]!;
      const mi = Math.fround(mv[i]! * beta1 + gi * (1 - beta1));
      newM[i] = mi;
      let vi = vv[i]!;
      sum += gi - gi + (mi - mi);
      if (raw != null) {
        const di = d == null ? Math.abs(raw[i]!) : d[i]!;
        vi = Math.fround(vi * beta2 + di * di * (1 - beta2));
        newV[i] = vi;
        sum += di - di + (vi - vi);
      }
      const vHat = vi / bc2;
      const denominator = (k === 1 ? Math.sqrt(vHat) : Math.pow(vHat, k / 2)) + epsilon;
      const direction = mi / bc1 / denominator;
      const wi = wv[i]!;
      const step = weightDecay === 0 ? direction : direction + wi * weightDecay;
      // Stored as float32, which is what Math.fround gives.
      const nextW = Math.fround(wi - step * lr);
      newW[i] = nextW;
      sum += nextW - nextW;
    }
    const out = {
      w: recycledTensor(newW, w.shape, resident),
      m: recycledTensor(newM, w.shape, resident),
      v: raw == null ? null : recycledTensor(newV, w.shape, resident),
    };
    if (sum === 0) {
      for (const t of [g, diagonal, out.w, out.m, out.v]) if (t != null) knownFinite.add(t);
    }
    return out;
  },
};

/** |d| averaged as spatialAverage does (see spatial-average.ts), in float64. */
function averagedAbs(d: Float32Array, shape: number[], mode: AveragingMode): Float64Array {
  const n = d.length;
  const out = new Float64Array(n);
  if (mode === 'none') {
    for (let i = 0; i < n; i++) out[i] = Math.abs(d[i]!);
    return out;
  }
  if (mode === 'spatial') {
    if (shape.length < 3) {
      throw new RangeError(`'spatial' averaging needs rank >= 3, got rank ${shape.length}.`);
    }
    // [spatial..., in, out] as [positions, pairs]: the mean over positions per pair.
    const pairs = shape[shape.length - 2]! * shape[shape.length - 1]!;
    const positions = n / pairs;
    const mean = new Float64Array(pairs);
    for (let s = 0; s < positions; s++) {
      for (let p = 0, i = s * pairs; p < pairs; p++, i++) mean[p] += Math.abs(d[i]!);
    }
    for (let p = 0; p < pairs; p++) mean[p] /= positions;
    for (let s = 0; s < positions; s++) out.set(mean, s * pairs);
    return out;
  }
  // Runs of blockSize rows along axis 0 (a last shorter run on its own), per other index.
  const rows = shape[0]!;
  const rest = n / rows;
  const b = mode.blockSize;
  const mean = new Float64Array(rest);
  for (let start = 0; start < rows; start += b) {
    const end = Math.min(rows, start + b);
    mean.fill(0);
    for (let r = start; r < end; r++) {
      for (let j = 0, i = r * rest; j < rest; j++, i++) mean[j] += Math.abs(d[i]!);
    }
    for (let j = 0; j < rest; j++) mean[j] /= end - start;
    for (let r = start; r < end; r++) out.set(mean, r * rest);
  }
  return out;
}
