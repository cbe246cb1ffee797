/**
 * ReluGrad, ours (TF.js has no such kernel): dx = dy * step(x) in one pass, where relu's stock
 * gradient takes two (Step, then Multiply) and a mask tensor in between. Inputs dy and x
 * (float32, one shape). The product is exact (dy times 1 or 0), so the result equals the stock
 * gradient's bit for bit: dy where x > 0; dy * 0 (a zero of dy's sign, or NaN for an infinite
 * dy) where x <= 0; NaN where x is NaN.
 */
import * as tf from '@tensorflow/tfjs';
import { asBackend, readValues, writeTensor } from './backend-access.js';

export const RELU_GRAD = 'ReluGrad';

/** out[i] = dy[i] * step(x[i]); written so that V8 compiles x > 0 without a branch. */
export function reluGradInto(dy: Float32Array, x: Float32Array, out: Float32Array): void {
  for (let i = 0; i < out.length; i++) {
    const v = x[i]!;
    out[i] = dy[i]! * (v !== v ? v : +(v > 0));
  }
}

/** Throws unless dy and x are float32 tensors of one shape. */
export function checkReluGradInputs(dy: tf.TensorInfo, x: tf.TensorInfo): void {
  if (dy.dtype !== 'float32' || x.dtype !== 'float32') {
    throw new Error(`${RELU_GRAD}: dy and x must be float32, got ${dy.dtype} and ${x.dtype}.`);
  }
  if (!tf.util.arraysEqual(dy.shape, x.shape)) {
    throw new Error(
      `${RELU_GRAD}: dy has shape [${dy.shape.join(',')}] but x has [${x.shape.join(',')}].`,
    );
  }
}

export function makeReluGrad(): tf.KernelFunc {
  return ({ inputs, backend: anyBackend }) => {
    const backend = asBackend(anyBackend);
    const dy = inputs['dy']!;
    const x = inputs['x']!;
    checkReluGradInputs(dy, x);
    const out = new Float32Array(tf.util.sizeFromShape(x.shape));
    reluGradInto(
      readValues(backend, dy) as Float32Array,
      readValues(backend, x) as Float32Array,
      out,
    );
    return writeTensor(backend, x.shape, 'float32', out);
  };
}
