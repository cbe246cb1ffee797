/**
 * Tile (what tf.broadcastTo and tf.tile run) as a JS copy of rows: each row of the output's
 * last axis is the matching input row repeated, or one value filled when the input's last axis
 * is 1. TF.js's cpu kernel converts every output index to coordinates and back (~100 ns an
 * element); ONNX Runtime's Tile took 2-4 ms a call for LayerNorm's [64, 64, 1] -> [64, 64, 64]
 * in the step's profiles on a loaded machine (tf.layers' LayerNormalization tiles its moments
 * to the input's shape, ~40 times a transformer step); this is a fill at memory speed, for any
 * size. A copy, so bit for bit TF.js's result.
 *
 * The per-channel broadcasts that elementwise.ts's Tile defers (a conv bias's tangent in the
 * second-order sweep, folded into the conv) still go that way: run() leaves them to its plan.
 */
import { MIN_ELEMENTWISE_SIZE, tileKernel as onnxTileKernel } from './elementwise.js';
import type { DirectKernel, NativeKernel } from './types.js';

function tileRows(
  x: Float32Array,
  out: Float32Array,
  shape: readonly number[],
  reps: readonly number[],
): void {
  const rank = shape.length;
  const outShape = shape.map((d, i) => d * reps[i]!);
  const inStrides = new Array<number>(rank);
  for (let i = rank - 1, s = 1; i >= 0; i--) {
    inStrides[i] = s;
    s *= shape[i]!;
  }
  const width = shape[rank - 1]!;
  const length = outShape[rank - 1]!;
  const rows = out.length / length;
  const index = new Array<number>(rank).fill(0);
  let from = 0;
  for (let r = 0, o = 0; r < rows; r++, o += length) {
    if (width === 1) {
      const v = x[from]!;
      if (length >= 16) out.fill(v, o, o + length);
      else for (let k = 0; k < length; k++) out[o + k] = v;
    } else {
      const row = x.subarray(from, from + width);
      for (let k = 0; k < length; k += width) out.set(row, o + k);
    }
    // Next output row: the input coordinate is the output's modulo the input's size.
    for (let axis = rank - 2; axis >= 0; axis--) {
      const d = shape[axis]!;
      const i = ++index[axis]!;
      if (i % d === 0) from -= (d - 1) * inStrides[axis]!;
      else from += inStrides[axis]!;
      if (i < outShape[axis]!) break;
      index[axis] = 0;
    }
  }
}

export const tileKernel: DirectKernel & Pick<NativeKernel, 'plan' | 'defer'> = {
  kernelName: 'Tile',
  plan: onnxTileKernel.plan,
  defer: onnxTileKernel.defer,
  run(inputs, attrs, backend, buffers) {
    const x = inputs['x']!;
    const reps = attrs['reps'] as number[];
    if (x.dtype !== 'float32' || x.shape.length === 0 || reps.length !== x.shape.length) {
      return null;
    }
    const outShape = x.shape.map((d, i) => d * reps[i]!);
    const n = outShape.reduce((a, b) => a * b, 1);
    if (n === 0) return null;
    const perChannel = onnxTileKernel.defer!(inputs, attrs, null as never) !== undefined;
    if (perChannel && n >= MIN_ELEMENTWISE_SIZE) return null;
    // Axes of size 1 repeated once move nothing; dropping them keeps rows long ([4096, 1, 1]
    // by [1, 64, 1] is 4096 rows of 64, not 262,144 rows of 1).
    const keep = x.shape.map((d, i) => d !== 1 || reps[i] !== 1);
    if (!keep.some(Boolean)) keep[keep.length - 1] = true;
    const out = buffers.take(n);
    tileRows(
      buffers.read(backend, x.dataId),
      out,
      x.shape.filter((_, i) => keep[i]),
      reps.filter((_, i) => keep[i]),
    );
    return buffers.output(backend, outShape, out);
  },
};
