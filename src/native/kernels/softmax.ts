/**
 * Softmax over the last axis (the only axis TF.js's kernels take: its `dim` attribute is -1 or
 * rank - 1, anything else throws there) as one JS pass per row, bit for bit TF.js's cpu result.
 * TF.js's kernel is five kernels (Max, Sub, Exp, Sum, RealDiv), two of them through its
 * broadcasting path, ~350 ns an element: 180 ms for the attention's [64, 2, 64, 64] scores.
 * Here each row is read three times in one function, ~10 ns an element, Math.exp being most of it.
 *
 * The same arithmetic in the same order: the row's maximum as TF.js's Max finds it (a NaN wins),
 * d = fround(x - max), e = fround(exp(d)), the sum of the e in double rounded to float32, then
 * fround(e / sum). So a row with a NaN or +Infinity is all NaN, a row of -Infinity is all NaN,
 * and the attention mask's -1e9 gives exactly 0, as in TF.js.
 */
import type { DirectKernel } from './types.js';

function softmaxRows(x: Float32Array, out: Float32Array, width: number): void {
  for (let offset = 0; offset < x.length; offset += width) {
    let max = x[offset]!;
    for (let j = 0; j < width; j++) {
      const v = x[offset + j]!;
      if (v !== v || v > max) max = v;
    }
    let sum = 0;
    for (let j = 0; j < width; j++) {
      // Stored and read back, so that each step is rounded to float32 as TF.js's are.
      const k = offset + j;
      out[k] = x[k]! - max;
      out[k] = Math.exp(out[k]!);
      sum += out[k]!;
    }
    const total = Math.fround(sum);
    for (let j = 0; j < width; j++) out[offset + j] = out[offset + j]! / total;
  }
}

export const softmaxKernel: DirectKernel = {
  kernelName: 'Softmax',
  run(inputs, attrs, backend, buffers) {
    const logits = inputs['logits']!;
    const rank = logits.shape.length;
    const dim = attrs['dim'] as number;
    if (logits.dtype !== 'float32' || rank === 0 || (dim !== -1 && dim !== rank - 1)) return null;
    const values = buffers.read(backend, logits.dataId);
    const width = logits.shape[rank - 1]!;
    if (width === 0 || values.length === 0) return null;
    const out = buffers.take(values.length);
    softmaxRows(values, out, width);
    return buffers.output(backend, logits.shape, out);
  },
};
