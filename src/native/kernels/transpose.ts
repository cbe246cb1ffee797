/**
 * Transpose (any permutation). TF.js's cpu kernel converts every output index to coordinates
 * and back through generic helpers (~100 ns an element here: the attention's head split and
 * merge, [64, 2, 64, 32] <-> [64, 64, 2, 32], took 20-60 ms a call). Large transposes go to
 * ONNX Runtime's Transpose (0.3 ms for [4096, 64] and for [64, 64, 2, 32] by [0, 2, 1, 3]; a
 * JS copy took 0.5-0.7 ms, though 0.5 against 0.8 ms the other way round: bench/speed/js-vs-onnx.ts),
 * small ones (below 4096 elements, where a call's ~20 us dominates) are a JS strided copy.
 *
 * The shapes are simplified first: size-1 axes dropped and input axes that stay adjacent and in
 * order under the permutation merged, so [64, 2, 64, 32] by [0, 2, 1, 3] is a copy of 32-float
 * rows in a [64][64][2] order, and a 2-D transpose is blocked so both sides stay in cache.
 * Both paths copy: bit for bit TF.js's result.
 */
import * as tf from '@tensorflow/tfjs';
import { ints, type DirectKernel, type NativeKernel, type NativePlan } from './types.js';

/** The input's shape and the permutation with size-1 axes dropped and runs merged. */
export function simplifyTranspose(
  shape: readonly number[],
  perm: readonly number[],
): { shape: number[]; perm: number[] } {
  // Drop size-1 axes (they move no data), renumbering the remaining input axes.
  const kept = shape.map((d, i) => (d === 1 ? -1 : i)).filter((i) => i >= 0);
  const renumber = new Map(kept.map((axis, i) => [axis, i]));
  const dims = kept.map((axis) => shape[axis]!);
  const p = perm.filter((axis) => shape[axis] !== 1).map((axis) => renumber.get(axis)!);
  // Merge output axes j, j+1 that read input axes a, a+1: they are one axis of d_a * d_{a+1}.
  const groups: number[][] = [];
  for (const axis of p) {
    const last = groups[groups.length - 1];
    if (last != null && last[last.length - 1] === axis - 1) last.push(axis);
    else groups.push([axis]);
  }
  // Input order of the groups gives the merged input shape; output order the permutation.
  const byInput = [...groups].sort((a, b) => a[0]! - b[0]!);
  const mergedShape = byInput.map((g) => g.reduce((n, axis) => n * dims[axis]!, 1));
  const mergedPerm = groups.map((g) => byInput.indexOf(g));
  return { shape: mergedShape, perm: mergedPerm };
}

/** Side of the square blocks of a 2-D transpose (32 x 32 floats: 4 KiB each side). */
const BLOCK = 32;

function transpose2d(x: Float32Array, out: Float32Array, rows: number, cols: number): void {
  for (let r0 = 0; r0 < rows; r0 += BLOCK) {
    const r1 = Math.min(rows, r0 + BLOCK);
    for (let c0 = 0; c0 < cols; c0 += BLOCK) {
      const c1 = Math.min(cols, c0 + BLOCK);
      for (let c = c0; c < c1; c++) {
        const o = c * rows;
        for (let r = r0; r < r1; r++) out[o + r] = x[r * cols + c]!;
      }
    }
  }
}

/**
 * The general case: an odometer over the output's outer axes; the last output axis is a
 * contiguous row copy when it is the input's last axis too, else a strided gather.
 */
function transposeNd(
  x: Float32Array,
  out: Float32Array,
  shape: readonly number[],
  perm: readonly number[],
): void {
  const rank = shape.length;
  const inStrides = new Array<number>(rank);
  for (let i = rank - 1, s = 1; i >= 0; i--) {
    inStrides[i] = s;
    s *= shape[i]!;
  }
  const outShape = perm.map((axis) => shape[axis]!);
  const strides = perm.map((axis) => inStrides[axis]!); // input stride of each output axis
  const inner = outShape[rank - 1]!;
  const innerStride = strides[rank - 1]!;
  const outer = out.length / inner;
  const index = new Array<number>(rank - 1).fill(0);
  let from = 0;
  for (let row = 0, o = 0; row < outer; row++, o += inner) {
    if (innerStride === 1) {
      if (inner >= 16) out.set(x.subarray(from, from + inner), o);
      else for (let k = 0; k < inner; k++) out[o + k] = x[from + k]!;
    } else {
      for (let k = 0, at = from; k < inner; k++, at += innerStride) out[o + k] = x[at]!;
    }
    // Advance the odometer over output axes rank-2 .. 0.
    for (let axis = rank - 2; axis >= 0; axis--) {
      from += strides[axis]!;
      if (++index[axis]! < outShape[axis]!) break;
      from -= strides[axis]! * outShape[axis]!;
      index[axis] = 0;
    }
  }
}

/** Writes `x` transposed by `perm` into `out`; shape and perm as simplifyTranspose gives them. */
export function transposeValues(
  x: Float32Array,
  out: Float32Array,
  shape: readonly number[],
  perm: readonly number[],
): void {
  if (shape.length <= 1) out.set(x.subarray(0, out.length));
  else if (shape.length === 2) transpose2d(x, out, shape[0]!, shape[1]!);
  else transposeNd(x, out, shape, perm);
}

/** From this many elements, ONNX Runtime's Transpose (see the top of the file). */
export const ONNX_TRANSPOSE_FROM = 4096;

export const transposeKernel: DirectKernel & { plan: NativeKernel['plan'] } = {
  kernelName: 'Transpose',
  run(inputs, attrs, backend, buffers) {
    const x = inputs['x']!;
    const n = tf.util.sizeFromShape(x.shape);
    if (x.dtype !== 'float32' || n >= ONNX_TRANSPOSE_FROM) return null;
    const perm = attrs['perm'] as number[];
    const outShape = perm.map((axis) => x.shape[axis]!);
    const values = buffers.read(backend, x.dataId);
    const out = buffers.take(n);
    const simple = simplifyTranspose(x.shape, perm);
    transposeValues(values, out, simple.shape, simple.perm);
    return buffers.output(backend, outShape, out);
  },
  plan(inputs, attrs): NativePlan | null {
    const x = inputs['x']!;
    if (x.dtype !== 'float32' || tf.util.sizeFromShape(x.shape) < ONNX_TRANSPOSE_FROM) return null;
    const perm = attrs['perm'] as number[];
    const outShape = perm.map((axis) => x.shape[axis]!);
    // The simplified shapes: fewer axes for ONNX Runtime to walk, same data.
    const simple = simplifyTranspose(x.shape, perm);
    const inShape = simple.shape.length > 0 ? simple.shape : [1];
    const simplePerm = simple.shape.length > 0 ? simple.perm : [0];
    const flatOut = simplePerm.map((axis) => inShape[axis]!);
    const key = `Transpose|[${inShape.join(',')}]|${simplePerm.join(',')}`;
    const build = () => ({
      nodes: [
        {
          opType: 'Transpose',
          inputs: ['x'],
          outputs: ['y'],
          attributes: { perm: ints(simplePerm) },
        },
      ],
      inputs: [{ name: 'x', shape: inShape }],
      outputs: [{ name: 'y', shape: flatOut }],
    });
    return { key, build, inputs: [x], inputShapes: [inShape], outShape };
  },
};
