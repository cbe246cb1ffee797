/**
 * Reductions (Sum, Mean, Max over any axes) as JS loops, bit for bit TF.js's cpu results: like
 * TF.js, the reduced axes are moved innermost (a transpose, here the fast one of transpose.ts)
 * and each output element accumulates its inputs in that order in double precision, rounded
 * to float32 on storing; Mean divides each element by the count first, as TF.js does; Max
 * keeps the first NaN it meets.
 *
 * Why: TF.js's own kernels transpose with its slow generic Transpose whenever the reduced axes
 * are not innermost, and Mean divides through its broadcasting path (6-20 ms a call for
 * LayerNorm's [64, 64, 64] means in the step's profiles). A reduction over axes of size 1 only
 * (the second-order sweep's broadcast gradients sum [1, 64, 64, 64] over axis 0 dozens of times
 * a step) is a copy, which ONNX Runtime's ReduceSum took ~3-9 ms a call for there (loaded
 * machine). Large real sums (8192+ elements, e.g. a bias
 * gradient over the batch) go to ONNX Runtime's ReduceSum on the simplified shape, which
 * reads the input once without a transpose; there the result agrees to float32 rounding.
 */
import * as tf from '@tensorflow/tfjs';
import { MIN_ELEMENTWISE_SIZE } from './elementwise.js';
import { simplifyTranspose, transposeValues } from './transpose.js';
import {
  int,
  type DirectKernel,
  type KernelBuffers,
  type NativeKernel,
  type NativePlan,
} from './types.js';

type Reduction = 'Sum' | 'Mean' | 'Max';

/**
 * The input's values with the reduced axes innermost (the input itself when they already are),
 * the output's shape, and how many inputs each output element reduces.
 */
function innermost(
  x: tf.TensorInfo,
  values: Float32Array,
  axes: number[],
  keepDims: boolean,
): { values: Float32Array; outShape: number[]; reduceSize: number } {
  const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const reduced = x.shape.map((_, i) => i).filter((i) => axes.includes(i));
  const perm = [...kept, ...reduced];
  const reduceSize = reduced.reduce((n, axis) => n * x.shape[axis]!, 1);
  const outShape = keepDims
    ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
    : kept.map((axis) => x.shape[axis]!);
  const simple = simplifyTranspose(x.shape, perm);
  // Size-1 axes move no data: [1, 64, 64, 64] summed over axis 0 needs no transpose.
  if (simple.perm.every((axis, i) => axis === i)) return { values, outShape, reduceSize };
  const permuted = new Float32Array(values.length);
  transposeValues(values, permuted, simple.shape, simple.perm);
  return { values: permuted, outShape, reduceSize };
}

function sumRows(x: Float32Array, out: Float32Array, reduceSize: number): void {
  if (reduceSize === 1) {
    // A sum over size-1 axes (the sweep's broadcast gradients): 0 + x, as TF.js's loop gives.
    for (let i = 0; i < out.length; i++) out[i] = 0 + x[i]!;
    return;
  }
  for (let i = 0, offset = 0; i < out.length; i++, offset += reduceSize) {
    let sum = 0;
    for (let j = 0; j < reduceSize; j++) sum += x[offset + j]!;
    out[i] = sum;
  }
}

function meanRows(x: Float32Array, out: Float32Array, reduceSize: number): void {
  // TF.js's Mean is Sum(x / n): each quotient rounded to float32 before it is added.
  for (let i = 0, offset = 0; i < out.length; i++, offset += reduceSize) {
    let sum = 0;
    for (let j = 0; j < reduceSize; j++) sum += Math.fround(x[offset + j]! / reduceSize);
    out[i] = sum;
  }
}

function maxRows(x: Float32Array, out: Float32Array, reduceSize: number): void {
  for (let i = 0, offset = 0; i < out.length; i++, offset += reduceSize) {
    let max = x[offset]!;
    for (let j = 0; j < reduceSize; j++) {
      const v = x[offset + j]!;
      if (v !== v || v > max) max = v;
    }
    out[i] = max;
  }
}

function reduce(
  kind: Reduction,
  x: tf.TensorInfo,
  attrs: tf.NamedAttrMap,
  backend: tf.KernelBackend,
  buffers: KernelBuffers,
): tf.TensorInfo | null {
  if (x.dtype !== 'float32') return null;
  const axisAttr = (kind === 'Max' ? attrs['reductionIndices'] : attrs['axis']) as
    number | number[];
  const axes = tf.util.parseAxisParam(axisAttr, x.shape);
  const size = tf.util.sizeFromShape(x.shape);
  if (size === 0 || (kind === 'Max' && axes.some((a) => x.shape[a] === 0))) return null;
  const keepDims = Boolean(attrs['keepDims']);
  const input = innermost(x, buffers.read(backend, x.dataId), axes, keepDims);
  const out = buffers.take(size / input.reduceSize);
  if (kind === 'Sum') sumRows(input.values, out, input.reduceSize);
  else if (kind === 'Mean') meanRows(input.values, out, input.reduceSize);
  else maxRows(input.values, out, input.reduceSize);
  return buffers.output(backend, input.outShape, out);
}

/**
 * The shape and axes of a reduction with size-1 axes dropped and adjacent axes of the same kind
 * (reduced or kept) merged: [4096, 64, 1] over axis 1 is [4096, 64] over axis 1, [1, 64, 4096]
 * over axis 1 is [64, 4096] over axis 0. ONNX Runtime's ReduceSum is 8-17x faster on the
 * simplified shapes (bench/speed/js-vs-onnx.ts: 1,331 -> 78 us and 985 -> 116 us). Empty axes
 * when only size-1 axes are reduced.
 */
export function simplifyReduction(
  shape: readonly number[],
  axes: readonly number[],
): { shape: number[]; axes: number[] } {
  const dims: { size: number; reduced: boolean }[] = [];
  shape.forEach((size, i) => {
    if (size === 1) return;
    const reduced = axes.includes(i);
    const last = dims[dims.length - 1];
    if (last != null && last.reduced === reduced) last.size *= size;
    else dims.push({ size, reduced });
  });
  return {
    shape: dims.map((d) => d.size),
    axes: dims.flatMap((d, i) => (d.reduced ? [i] : [])),
  };
}

/**
 * For a sum or mean of [R, N] over its R rows on `threads` ONNX Runtime threads: how many equal
 * row blocks to reduce it in, as [k, R/k, N] over the middle axis and then over k (the largest
 * divisor of R up to 8 per thread), else 1 (one thread, or no such divisor). ONNX Runtime's plain
 * form splits the N columns among the threads, each walking all R rows: 3-27x slower on two
 * threads than on one at [R, 16-64] (bench/speed/reduce-threads.ts); the blocks split the rows.
 * The step graphs (translate.ts) and the native Sum use it alike, so that a step graph on
 * several threads and the op-by-op step its check compares it with round their sums alike.
 * ADAHESSIAN_ROW_BLOCKS=0: the plain form on any thread count (A/Bs).
 */
export function rowBlockCount(rows: number, threads: number): number {
  if (threads <= 1 || process.env['ADAHESSIAN_ROW_BLOCKS'] === '0') return 1;
  for (let k = Math.min(8 * threads, rows >> 1); k > 1; k--) if (rows % k === 0) return k;
  return 1;
}

/**
 * Sum: JS below MIN_ELEMENTWISE_SIZE elements and over axes of size 1 (a copy), ONNX Runtime's
 * ReduceSum on the simplified shape for other large sums (in row blocks on several threads).
 */
export const sumKernel: DirectKernel & { plan: NativeKernel['plan'] } = {
  kernelName: 'Sum',
  plan(inputs, attrs, context): NativePlan | null {
    const x = inputs['x']!;
    if (x.dtype !== 'float32' || tf.util.sizeFromShape(x.shape) < MIN_ELEMENTWISE_SIZE) return null;
    const axes = tf.util.parseAxisParam(attrs['axis'] as number | number[], x.shape);
    const simple = simplifyReduction(x.shape, axes);
    if (simple.axes.length === 0) return null;
    const keepDims = Boolean(attrs['keepDims']);
    const outShape = keepDims
      ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
      : x.shape.filter((_, i) => !axes.includes(i));
    const graphOut = simple.shape.filter((_, i) => !simple.axes.includes(i));
    const rowsOnly = simple.shape.length === 2 && simple.axes.length === 1 && simple.axes[0] === 0;
    const blocks = rowsOnly ? rowBlockCount(simple.shape[0]!, context?.threads ?? 1) : 1;
    const key = `ReduceSum|[${simple.shape.join(',')}]|${simple.axes.join(',')}${blocks > 1 ? `|${blocks} blocks` : ''}`;
    const sum = (input: string, axes: string, output: string) => ({
      opType: 'ReduceSum',
      inputs: [input, axes],
      outputs: [output],
      attributes: { keepdims: int(0) },
    });
    const build = () =>
      blocks > 1
        ? {
            nodes: [sum('x', 'rows', 'partial'), sum('partial', 'first', 'y')],
            initializers: [
              { name: 'rows', values: [1] },
              { name: 'first', values: [0] },
            ],
            inputs: [{ name: 'x', shape: [blocks, simple.shape[0]! / blocks, simple.shape[1]!] }],
            outputs: [{ name: 'y', shape: graphOut }],
          }
        : {
            nodes: [sum('x', 'axes', 'y')],
            initializers: [{ name: 'axes', values: simple.axes }],
            inputs: [{ name: 'x', shape: simple.shape }],
            outputs: [{ name: 'y', shape: graphOut.length > 0 ? graphOut : [] }],
          };
    const inputShape =
      blocks > 1 ? [blocks, simple.shape[0]! / blocks, simple.shape[1]!] : simple.shape;
    return { key, build, inputs: [x], inputShapes: [inputShape], outShape };
  },
  run(inputs, attrs, backend, buffers) {
    const x = inputs['x']!;
    const axes = tf.util.parseAxisParam(attrs['axis'] as number | number[], x.shape);
    const trivial = axes.every((axis) => x.shape[axis] === 1);
    if (!trivial && tf.util.sizeFromShape(x.shape) >= MIN_ELEMENTWISE_SIZE) return null;
    return reduce('Sum', x, attrs, backend, buffers);
  },
};

export const meanKernel: DirectKernel = {
  kernelName: 'Mean',
  run: (inputs, attrs, backend, buffers) => reduce('Mean', inputs['x']!, attrs, backend, buffers),
};

export const maxKernel: DirectKernel = {
  kernelName: 'Max',
  run: (inputs, attrs, backend, buffers) => reduce('Max', inputs['x']!, attrs, backend, buffers),
};
