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
 * Sum: JS below MIN_ELEMENTWISE_SIZE elements and over axes of size 1 (a copy), ONNX Runtime's
 * ReduceSum on the simplified shape for other large sums.
 */
export const sumKernel: DirectKernel & { plan: NativeKernel['plan'] } = {
  kernelName: 'Sum',
  plan(inputs, attrs): NativePlan | null {
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
    const key = `ReduceSum|[${simple.shape.join(',')}]|${simple.axes.join(',')}`;
    const build = () => ({
      nodes: [
        {
          opType: 'ReduceSum',
          inputs: ['x', 'axes'],
          outputs: ['y'],
          attributes: { keepdims: int(0) },
        },
      ],
      initializers: [{ name: 'axes', values: simple.axes }],
      inputs: [{ name: 'x', shape: simple.shape }],
      outputs: [{ name: 'y', shape: graphOut.length > 0 ? graphOut : [] }],
    });
    return { key, build, inputs: [x], inputShapes: [simple.shape], outShape };
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
