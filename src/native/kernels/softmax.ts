/**
 * Softmax over the last axis (the only axis TF.js's kernels take: its `dim` attribute is -1 or
 * rank - 1, anything else throws there). TF.js's kernel is five kernels (Max, Sub, Exp, Sum,
 * RealDiv), two of them through its broadcasting path, ~350 ns an element: 180 ms for the
 * attention's [64, 2, 64, 64] scores. Large inputs go to ONNX Runtime's Softmax (0.9-2.2 ms
 * there, against 32-33 ms for the JS rows below: Math.exp is not vectorised; bench/speed/js-vs-onnx.ts),
 * agreeing to float32 rounding, with the same NaN rows (tested).
 *
 * Small ones are JS rows, bit for bit TF.js's: the row's maximum as TF.js's Max finds it (a NaN
 * wins), d = fround(x - max), e = fround(exp(d)), the sum of the e in double rounded to
 * float32, then fround(e / sum). So a row with a NaN or +Infinity is all NaN, a row of
 * -Infinity is all NaN, and the attention mask's -1e9 gives exactly 0, as in TF.js.
 */
import * as tf from '@tensorflow/tfjs';
import { ONNX_FROM_COSTLY } from './unary.js';
import { int, type DirectKernel, type NativeKernel, type NativePlan } from './types.js';

/** Softmax over rows of `width` values, TF.js's steps in float32 (also timed by bench/speed/js-vs-onnx.ts). */
export function softmaxRows(x: Float32Array, out: Float32Array, width: number): void {
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

const lastAxis = (logits: tf.TensorInfo, attrs: tf.NamedAttrMap) => {
  const rank = logits.shape.length;
  const dim = attrs['dim'] as number;
  return logits.dtype === 'float32' && rank > 0 && (dim === -1 || dim === rank - 1);
};

/** Below ONNX_FROM_COSTLY elements the JS rows, above ONNX Runtime's Softmax (last axis). */
export const softmaxKernel: DirectKernel & { plan: NativeKernel['plan'] } = {
  kernelName: 'Softmax',
  run(inputs, attrs, backend, buffers) {
    const logits = inputs['logits']!;
    const n = tf.util.sizeFromShape(logits.shape);
    if (!lastAxis(logits, attrs) || n === 0 || n >= ONNX_FROM_COSTLY) return null;
    const values = buffers.read(backend, logits.dataId);
    const out = buffers.take(values.length);
    softmaxRows(values, out, logits.shape[logits.shape.length - 1]!);
    return buffers.output(backend, logits.shape, out);
  },
  plan(inputs, attrs): NativePlan | null {
    const x = inputs['logits']!;
    if (!lastAxis(x, attrs) || tf.util.sizeFromShape(x.shape) < ONNX_FROM_COSTLY) return null;
    const key = `Softmax|[${x.shape.join(',')}]`;
    const build = () => ({
      nodes: [{ opType: 'Softmax', inputs: ['x'], outputs: ['y'], attributes: { axis: int(-1) } }],
      inputs: [{ name: 'x', shape: x.shape }],
      outputs: [{ name: 'y', shape: x.shape }],
    });
    return { key, build, inputs: [x], inputShapes: [x.shape], outShape: x.shape };
  },
};
