/**
 * Element-wise unary kernels (and Pow with a scalar or same-shape exponent): small tensors as
 * typed-array JS loops, bit for bit TF.js's cpu results (each loop computes the double-precision
 * expression TF.js's kernel does: Math.exp, 1 / Math.sqrt, TF.js's own erf approximation... and
 * rounds it to float32 on storing), large ones as one-node ONNX graphs, which agree to float32
 * rounding (ONNX Runtime's Erf is the true erf, TF.js's an approximation with 1.5e-7 absolute
 * error).
 *
 * Why both: TF.js's cpu kernels share one generic loop that calls the op through a closure
 * (not inlined: ~20-100 ns an element), and Neg goes through its broadcasting multiply, which
 * converts every index to coordinates; a loop written per op is inlined by V8 and has no call
 * overhead, so it wins on small tensors. On large ones ONNX Runtime's vectorised kernels win by
 * far (bench/speed/js-vs-onnx.ts, [64, 64, 128], one thread, loaded machine: Exp 0.75 ms against
 * 25 ms in JS, Erf 1.0 against 36 ms, Neg 0.58 against 1.5 ms): Math.exp is not vectorised.
 * The crossover: ~4096 elements for a cheap op (an Add: 20 us both), lower for exp-like ones
 * (ONNX Runtime's ~15-20 us a call is ~500 Math.exp), but exp-like ops also stay JS up to 4096:
 * a classifier's logits ([128, 10], [256, 10]) then keep TF.js's exact Math.exp, so training
 * the image models gives the same numbers bit for bit as before the native unary kernels
 * (docs/RESULTS.md's commands reproduce), at a cost of a few microseconds. Pow stays JS at every size: its graph
 * would follow C's pow (pow(1, NaN) is 1 there, NaN in JS), and LayerNorm's pow(v, 1.5) reads
 * a tiled tensor whose repeats the loop skips.
 * Each loop is its own function so that V8 inlines its op (one shared loop over closures
 * would be TF.js's problem again).
 */
import * as tf from '@tensorflow/tfjs';
import type { OnnxNode } from '../onnx-model.js';
import type { DirectKernel, KernelBuffers, NativeKernel, NativePlan } from './types.js';

export type Loop = (x: Float32Array, out: Float32Array) => void;

/** From this many elements, ONNX Runtime: cheap ops (a pass of + - * /) and exp-like ones (see above). */
export const ONNX_FROM_CHEAP = 4096;
export const ONNX_FROM_COSTLY = 4096;

/**
 * A unary kernel: `loop` below `onnxFrom` elements, else the ONNX nodes `nodes` (from input
 * 'x' to output 'y').
 */
export function unaryKernel(
  kernelName: string,
  loop: Loop,
  nodes: OnnxNode[],
  onnxFrom: number,
  inputName = 'x',
): DirectKernel & { plan: NativeKernel['plan']; loop: Loop } {
  return {
    kernelName,
    // Exposed so that bench/speed/js-vs-onnx.ts times this loop, not a copy of it.
    loop,
    run(inputs, _attrs, backend, buffers) {
      const x = inputs[inputName]!;
      if (x.dtype !== 'float32' || tf.util.sizeFromShape(x.shape) >= onnxFrom) return null;
      const values = buffers.read(backend, x.dataId);
      const out = buffers.take(values.length);
      loop(values, out);
      return buffers.output(backend, x.shape, out);
    },
    plan(inputs): NativePlan | null {
      const x = inputs[inputName]!;
      if (x.dtype !== 'float32' || tf.util.sizeFromShape(x.shape) < onnxFrom) return null;
      const key = `${kernelName}|[${x.shape.join(',')}]`;
      const build = () => ({
        nodes,
        inputs: [{ name: 'x', shape: x.shape }],
        outputs: [{ name: 'y', shape: x.shape }],
      });
      return { key, build, inputs: [x], inputShapes: [x.shape], outShape: x.shape };
    },
  };
}

/** One ONNX node from 'x' to 'y'. */
const node = (opType: string): OnnxNode[] => [{ opType, inputs: ['x'], outputs: ['y'] }];

export const negKernel = unaryKernel(
  'Neg',
  (x, out) => {
    // TF.js multiplies by -1 (so -0 for 0, and NaN stays NaN); -v is the same value.
    for (let i = 0; i < x.length; i++) out[i] = -x[i]!;
  },
  node('Neg'),
  ONNX_FROM_CHEAP,
);

export const expKernel = unaryKernel(
  'Exp',
  (x, out) => {
    for (let i = 0; i < x.length; i++) out[i] = Math.exp(x[i]!);
  },
  node('Exp'),
  ONNX_FROM_COSTLY,
);

export const logKernel = unaryKernel(
  'Log',
  (x, out) => {
    for (let i = 0; i < x.length; i++) out[i] = Math.log(x[i]!);
  },
  node('Log'),
  ONNX_FROM_COSTLY,
);

export const sqrtKernel = unaryKernel(
  'Sqrt',
  (x, out) => {
    for (let i = 0; i < x.length; i++) out[i] = Math.sqrt(x[i]!);
  },
  node('Sqrt'),
  ONNX_FROM_COSTLY,
);

export const rsqrtKernel = unaryKernel(
  'Rsqrt',
  (x, out) => {
    for (let i = 0; i < x.length; i++) out[i] = 1 / Math.sqrt(x[i]!);
  },
  [
    { opType: 'Sqrt', inputs: ['x'], outputs: ['root'] },
    { opType: 'Reciprocal', inputs: ['root'], outputs: ['y'] },
  ],
  ONNX_FROM_COSTLY,
);

export const squareKernel = unaryKernel(
  'Square',
  (x, out) => {
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      out[i] = v * v;
    }
  },
  [{ opType: 'Mul', inputs: ['x', 'x'], outputs: ['y'] }],
  ONNX_FROM_CHEAP,
);

export const absKernel = unaryKernel(
  'Abs',
  (x, out) => {
    for (let i = 0; i < x.length; i++) out[i] = Math.abs(x[i]!);
  },
  node('Abs'),
  ONNX_FROM_CHEAP,
);

export const reciprocalKernel = unaryKernel(
  'Reciprocal',
  (x, out) => {
    for (let i = 0; i < x.length; i++) out[i] = 1 / x[i]!;
  },
  node('Reciprocal'),
  ONNX_FROM_CHEAP,
);

export const tanhKernel = unaryKernel(
  'Tanh',
  (x, out) => {
    for (let i = 0; i < x.length; i++) out[i] = Math.tanh(x[i]!);
  },
  node('Tanh'),
  ONNX_FROM_COSTLY,
);

export const sigmoidKernel = unaryKernel(
  'Sigmoid',
  (x, out) => {
    for (let i = 0; i < x.length; i++) out[i] = 1 / (1 + Math.exp(-x[i]!));
  },
  node('Sigmoid'),
  ONNX_FROM_COSTLY,
);

// TF.js's erf (Abramowitz and Stegun 7.1.26), its constants and its order of operations.
const ERF_P = tf.backend_util.ERF_P;
const ERF_A1 = tf.backend_util.ERF_A1;
const ERF_A2 = tf.backend_util.ERF_A2;
const ERF_A3 = tf.backend_util.ERF_A3;
const ERF_A4 = tf.backend_util.ERF_A4;
const ERF_A5 = tf.backend_util.ERF_A5;

export const erfKernel = unaryKernel(
  'Erf',
  (x, out) => {
    for (let i = 0; i < x.length; i++) {
      const xi = x[i]!;
      const v = Math.abs(xi);
      const t = 1.0 / (1.0 + ERF_P * v);
      out[i] =
        Math.sign(xi) *
        (1.0 -
          ((((ERF_A5 * t + ERF_A4) * t + ERF_A3) * t + ERF_A2) * t + ERF_A1) *
            t *
            Math.exp(-v * v));
    }
  },
  node('Erf'),
  ONNX_FROM_COSTLY,
);

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

export const UNARY_KERNELS: readonly (DirectKernel & Partial<NativeKernel>)[] = [
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
