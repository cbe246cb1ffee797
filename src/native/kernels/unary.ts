/**
 * Element-wise unary kernels (and Pow with a scalar or same-shape exponent) as typed-array JS
 * loops, bit for bit TF.js's cpu results: each loop computes the same double-precision
 * expression TF.js's kernel does (Math.exp, 1 / Math.sqrt, TF.js's own erf approximation...)
 * and rounds it to float32 the same way, on storing.
 *
 * Why JS and not ONNX Runtime: TF.js's cpu kernels share one generic loop that calls the op
 * through a closure (not inlined: ~20-100 ns an element), and Neg and Pow go through its
 * broadcasting multiply / binary path that converts every index to coordinates. A loop
 * written per op is inlined by V8 and runs at 1-5 ns an element (Math.exp, Math.pow and erf
 * are the slow ones), which is within a few ms of ONNX Runtime's vectorised kernels at the
 * transformer's sizes (524,288 elements) and keeps TF.js's values exactly (ONNX Runtime's Erf
 * is the true erf, TF.js's an approximation with 1.5e-7 absolute error). Every size is taken:
 * there is no call overhead for a threshold to amortise. Each loop is its own function so that
 * V8 inlines its op (one shared loop over closures would be TF.js's problem again).
 */
import * as tf from '@tensorflow/tfjs';
import type { DirectKernel, KernelBuffers } from './types.js';

type Loop = (x: Float32Array, out: Float32Array) => void;

function unaryKernel(kernelName: string, loop: Loop): DirectKernel {
  return {
    kernelName,
    run(inputs, _attrs, backend, buffers) {
      const x = inputs['x']!;
      if (x.dtype !== 'float32') return null;
      const values = buffers.read(backend, x.dataId);
      const out = buffers.take(values.length);
      loop(values, out);
      return buffers.output(backend, x.shape, out);
    },
  };
}

export const negKernel = unaryKernel('Neg', (x, out) => {
  // TF.js multiplies by -1 (so -0 for 0, and NaN stays NaN); -v is the same value.
  for (let i = 0; i < x.length; i++) out[i] = -x[i]!;
});

export const expKernel = unaryKernel('Exp', (x, out) => {
  for (let i = 0; i < x.length; i++) out[i] = Math.exp(x[i]!);
});

export const logKernel = unaryKernel('Log', (x, out) => {
  for (let i = 0; i < x.length; i++) out[i] = Math.log(x[i]!);
});

export const sqrtKernel = unaryKernel('Sqrt', (x, out) => {
  for (let i = 0; i < x.length; i++) out[i] = Math.sqrt(x[i]!);
});

export const rsqrtKernel = unaryKernel('Rsqrt', (x, out) => {
  for (let i = 0; i < x.length; i++) out[i] = 1 / Math.sqrt(x[i]!);
});

export const squareKernel = unaryKernel('Square', (x, out) => {
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    out[i] = v * v;
  }
});

export const absKernel = unaryKernel('Abs', (x, out) => {
  for (let i = 0; i < x.length; i++) out[i] = Math.abs(x[i]!);
});

export const reciprocalKernel = unaryKernel('Reciprocal', (x, out) => {
  for (let i = 0; i < x.length; i++) out[i] = 1 / x[i]!;
});

export const tanhKernel = unaryKernel('Tanh', (x, out) => {
  for (let i = 0; i < x.length; i++) out[i] = Math.tanh(x[i]!);
});

export const sigmoidKernel = unaryKernel('Sigmoid', (x, out) => {
  for (let i = 0; i < x.length; i++) out[i] = 1 / (1 + Math.exp(-x[i]!));
});

// TF.js's erf (Abramowitz and Stegun 7.1.26), its constants and its order of operations.
const ERF_P = tf.backend_util.ERF_P;
const ERF_A1 = tf.backend_util.ERF_A1;
const ERF_A2 = tf.backend_util.ERF_A2;
const ERF_A3 = tf.backend_util.ERF_A3;
const ERF_A4 = tf.backend_util.ERF_A4;
const ERF_A5 = tf.backend_util.ERF_A5;

export const erfKernel = unaryKernel('Erf', (x, out) => {
  for (let i = 0; i < x.length; i++) {
    const xi = x[i]!;
    const v = Math.abs(xi);
    const t = 1.0 / (1.0 + ERF_P * v);
    out[i] =
      Math.sign(xi) *
      (1.0 -
        ((((ERF_A5 * t + ERF_A4) * t + ERF_A3) * t + ERF_A2) * t + ERF_A1) * t * Math.exp(-v * v));
  }
});

function powScalar(x: Float32Array, e: number, out: Float32Array): void {
  if (e === 2) {
    // Exact in double for a float32 x, so equal to Math.pow(x, 2).
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      out[i] = v * v;
    }
  } else if (e === 1) {
    for (let i = 0; i < x.length; i++) out[i] = Math.pow(x[i]!, 1);
  } else {
    // Math.pow is ~20 ns; LayerNorm's pow(variance + eps, 1.5) reads a tiled tensor, each
    // value repeated along a row, so a repeat reuses the previous result (not for zeros, whose
    // sign can matter: pow(-0, -1) is -Infinity).
    let previous = NaN;
    let result = NaN;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      if (v !== previous || v === 0) {
        previous = v;
        result = Math.pow(v, e);
      }
      out[i] = result;
    }
  }
}

function powSameShape(x: Float32Array, e: Float32Array, out: Float32Array): void {
  for (let i = 0; i < x.length; i++) out[i] = Math.pow(x[i]!, e[i]!);
}

/**
 * Pow with a one-element exponent (tf.pow(x, 2): LayerNorm's variance and its gradients) or an
 * exponent of the base's shape; other broadcasts are left to TF.js. A one-element base with a
 * tensor exponent is rare enough to leave too.
 */
export const powKernel: DirectKernel = {
  kernelName: 'Pow',
  run(inputs, _attrs, backend, buffers: KernelBuffers) {
    const a = inputs['a']!;
    const b = inputs['b']!;
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return null;
    const base = buffers.read(backend, a.dataId);
    const exponent = buffers.read(backend, b.dataId);
    const scalar = exponent.length === 1 && b.shape.length <= a.shape.length;
    if (!scalar && !tf.util.arraysEqual(a.shape, b.shape)) return null;
    const out = buffers.take(base.length);
    if (scalar) powScalar(base, exponent[0]!, out);
    else powSameShape(base, exponent, out);
    return buffers.output(backend, a.shape, out);
  },
};

export const UNARY_KERNELS: readonly DirectKernel[] = [
  negKernel,
  expKernel,
  logKernel,
  sqrtKernel,
  rsqrtKernel,
  squareKernel,
  absKernel,
  reciprocalKernel,
  tanhKernel,
  sigmoidKernel,
  erfKernel,
  powKernel,
];
