/**
 * Comparisons (Equal, NotEqual, Greater, GreaterEqual, Less, LessEqual), LogicalAnd and
 * Select with TF.js's broadcasting, as JS loops over rows of the output's last axis. TF.js's
 * cpu kernels convert every output index to coordinates and back on a broadcast (~100 ns an
 * element: 50 ms for the one-hot loss's Equal of [64, 64, 96] with [64, 64, 1], the row max
 * in logSumExp's gradient); here the broadcast is a row stride of 0, ~1-2 ns an element.
 * Same results exactly: the same comparison of the same values, 0/1 stored as bool (Uint8Array).
 * Only on backends that take a typed array as a tensor's data (cpu), like the other JS kernels.
 */
import * as tf from '@tensorflow/tfjs';
import type { DirectKernel, KernelBuffers } from './types.js';

type Values = Float32Array | Int32Array | Uint8Array;

/** cpu has it (not on the public KernelBackend type). */
interface TensorInfoMaker {
  makeTensorInfo?(shape: number[], dtype: tf.DataType, values: Uint8Array): tf.TensorInfo;
}

/**
 * Calls `row` once per row of the output's last axis with where that row starts in each
 * operand and the operand's stride along it (0 where the operand is broadcast).
 */
export function forEachBroadcastRow(
  outShape: readonly number[],
  shapes: readonly (readonly number[])[],
  row: (offsets: number[], steps: number[], out: number, length: number) => void,
): void {
  const rank = outShape.length;
  const strides = shapes.map((shape) => {
    // Aligned to the right, stride 0 on axes the operand lacks or has as 1.
    const s = new Array<number>(rank).fill(0);
    for (let i = shape.length - 1, stride = 1; i >= 0; i--) {
      const axis = rank - shape.length + i;
      if (shape[i] !== 1) s[axis] = stride;
      stride *= shape[i]!;
    }
    return s;
  });
  if (rank === 0) {
    row(
      shapes.map(() => 0),
      shapes.map(() => 0),
      0,
      1,
    );
    return;
  }
  const length = outShape[rank - 1]!;
  const steps = strides.map((s) => s[rank - 1]!);
  const rows = length === 0 ? 0 : outShape.reduce((a, b) => a * b, 1) / length;
  const index = new Array<number>(rank).fill(0);
  const offsets = shapes.map(() => 0);
  for (let r = 0; r < rows; r++) {
    row(offsets, steps, r * length, length);
    for (let axis = rank - 2; axis >= 0; axis--) {
      for (let k = 0; k < offsets.length; k++) offsets[k]! += strides[k]![axis]!;
      if (++index[axis]! < outShape[axis]!) break;
      for (let k = 0; k < offsets.length; k++) offsets[k]! -= strides[k]![axis]! * outShape[axis]!;
      index[axis] = 0;
    }
  }
}

function readValues(
  backend: tf.KernelBackend,
  buffers: KernelBuffers,
  info: tf.TensorInfo,
): Values | null {
  if (info.dtype === 'float32') return buffers.read(backend, info.dataId);
  if (info.dtype !== 'int32' && info.dtype !== 'bool') return null;
  const values = backend.readSync(info.dataId);
  return values instanceof Int32Array || values instanceof Uint8Array ? values : null;
}

const OPS = ['Equal', 'NotEqual', 'Greater', 'GreaterEqual', 'Less', 'LessEqual'] as const;
type Op = (typeof OPS)[number] | 'LogicalAnd';

/** One row of `op`; one loop per op so that each compiles to a tight comparison. */
function compareRow(
  op: Op,
  a: Values,
  ai: number,
  as: number,
  b: Values,
  bi: number,
  bs: number,
  out: Uint8Array,
  o: number,
  n: number,
): void {
  switch (op) {
    case 'Equal':
      for (let k = 0; k < n; k++, ai += as, bi += bs) out[o + k] = a[ai] === b[bi] ? 1 : 0;
      break;
    case 'NotEqual':
      for (let k = 0; k < n; k++, ai += as, bi += bs) out[o + k] = a[ai] !== b[bi] ? 1 : 0;
      break;
    case 'Greater':
      for (let k = 0; k < n; k++, ai += as, bi += bs) out[o + k] = a[ai]! > b[bi]! ? 1 : 0;
      break;
    case 'GreaterEqual':
      for (let k = 0; k < n; k++, ai += as, bi += bs) out[o + k] = a[ai]! >= b[bi]! ? 1 : 0;
      break;
    case 'Less':
      for (let k = 0; k < n; k++, ai += as, bi += bs) out[o + k] = a[ai]! < b[bi]! ? 1 : 0;
      break;
    case 'LessEqual':
      for (let k = 0; k < n; k++, ai += as, bi += bs) out[o + k] = a[ai]! <= b[bi]! ? 1 : 0;
      break;
    case 'LogicalAnd':
      for (let k = 0; k < n; k++, ai += as, bi += bs) out[o + k] = a[ai] && b[bi] ? 1 : 0;
      break;
  }
}

function booleanKernel(op: Op): DirectKernel {
  return {
    kernelName: op,
    run(inputs, _attrs, backend, buffers) {
      const maker = backend as unknown as TensorInfoMaker;
      const a = inputs['a']!;
      const b = inputs['b']!;
      if (maker.makeTensorInfo == null || a.dtype !== b.dtype) return null;
      if (op === 'LogicalAnd' && a.dtype !== 'bool') return null;
      const outShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape, b.shape);
      const av = readValues(backend, buffers, a);
      const bv = readValues(backend, buffers, b);
      if (av == null || bv == null) return null;
      const out = new Uint8Array(tf.util.sizeFromShape(outShape));
      forEachBroadcastRow(outShape, [a.shape, b.shape], (offsets, steps, o, n) =>
        compareRow(op, av, offsets[0]!, steps[0]!, bv, offsets[1]!, steps[1]!, out, o, n),
      );
      return maker.makeTensorInfo(outShape, 'bool', out);
    },
  };
}

/**
 * Select (tf.where) of float32 values by a bool condition, all three broadcast to one shape:
 * the condition row picks a's or b's element, as TF.js's kernel does (which broadcasts only a
 * condition of rank 1 against rows; other shapes must match there, and they do here too).
 */
export const selectKernel: DirectKernel = {
  kernelName: 'Select',
  run(inputs, _attrs, backend, buffers) {
    const c = inputs['condition']!;
    const t = inputs['t']!;
    const e = inputs['e']!;
    if (c.dtype !== 'bool' || t.dtype !== 'float32' || e.dtype !== 'float32') return null;
    if (!tf.util.arraysEqual(c.shape, t.shape) || !tf.util.arraysEqual(t.shape, e.shape)) {
      return null;
    }
    const cv = backend.readSync(c.dataId);
    if (!(cv instanceof Uint8Array)) return null;
    const tv = buffers.read(backend, t.dataId);
    const ev = buffers.read(backend, e.dataId);
    const out = buffers.take(tv.length);
    for (let i = 0; i < out.length; i++) out[i] = cv[i] ? tv[i]! : ev[i]!;
    return buffers.output(backend, t.shape, out);
  },
};

export const COMPARE_KERNELS: readonly DirectKernel[] = [
  ...OPS.map((op) => booleanKernel(op)),
  booleanKernel('LogicalAnd'),
  selectKernel,
];
