/**
 * Large element-wise binary ops (with numpy/TF.js broadcasting) and Sum reductions as ONNX
 * graphs. TF.js's cpu backend runs these in plain JS, and its broadcasting path indexes every
 * element through coordinate arithmetic (~25x slower than ONNX Runtime on a per-channel
 * broadcast), which is what a second-order sweep through bias gradients and pooling spends
 * its time on. Small tensors stay with TF.js: below a few thousand elements the call
 * overhead (~10 us) is larger than the work.
 *
 * Add, Multiply and Tile also take part in fusions with deferred outputs (outputs computed on
 * first read, see KernelBuffers.deferred): a conv plus its bias or a broadcast bias, two convs
 * summed, a max pool's gradient or a sweep's product times relu's 0/1 mask. Step is one JS pass.
 */
import * as tf from '@tensorflow/tfjs';
import { conv2DKernel, fusedConv2DKernel, type PendingConv2D } from './conv.js';
import type { MaxPoolGradInfo } from './max-pool-grad.js';
import {
  allFloat32,
  int,
  type KernelBuffers,
  type DirectKernel,
  type NativeKernel,
  type NativePlan,
} from './types.js';

/** Below this many output elements TF.js's own kernel is as fast. */
export const MIN_ELEMENTWISE_SIZE = 8192;

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function binaryKernel(kernelName: string, opType: string): NativeKernel {
  return {
    kernelName,
    plan(inputs): NativePlan | null {
      const a = inputs['a']!;
      const b = inputs['b']!;
      if (!allFloat32(a, b)) return null;
      let outShape: number[];
      try {
        outShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape, b.shape);
      } catch {
        return null;
      }
      if (size(outShape) < MIN_ELEMENTWISE_SIZE) return null;
      const key = `${opType}|[${a.shape.join(',')}][${b.shape.join(',')}]`;
      const build = () => ({
        nodes: [{ opType, inputs: ['a', 'b'], outputs: ['y'] }],
        inputs: [
          { name: 'a', shape: a.shape },
          { name: 'b', shape: b.shape },
        ],
        outputs: [{ name: 'y', shape: outShape }],
      });
      return { key, build, inputs: [a, b], inputShapes: [a.shape, b.shape], outShape };
    },
  };
}

/** The operand of a binary kernel that is a deferred output of `kind`, and the other one. */
function pendingOperand<T extends { kind: string }>(
  inputs: tf.NamedTensorInfoMap,
  buffers: KernelBuffers,
  kind: T['kind'],
): { pending: T; other: tf.TensorInfo } | null {
  const a = inputs['a']!;
  const b = inputs['b']!;
  for (const [operand, other] of [
    [a, b],
    [b, a],
  ] as const) {
    const pending = buffers.pendingInfo(operand.dataId) as T | undefined;
    if (pending?.kind === kind) return { pending, other };
  }
  return null;
}

const onnxAdd = binaryKernel('Add', 'Add');

/**
 * Add; a conv's output plus its bias (what tf.layers' conv2d does while gradients are
 * recorded: conv2d, then add, then the activation) as one Conv with the bias in it, where
 * MLAS adds it for free, when the conv's output was deferred and is still unread: one pass
 * over the activation instead of two. Other sums: ONNX Runtime's Add.
 */
export const addKernel: DirectKernel & { plan: NativeKernel['plan'] } = {
  kernelName: 'Add',
  plan: onnxAdd.plan,
  run(inputs, _attrs, backend, buffers) {
    const found = pendingOperand<PendingConv2D>(inputs, buffers, 'Conv2D');
    if (found == null) return null;
    const { pending: conv, other } = found;
    const otherPending = buffers.pendingInfo(other.dataId) as
      PendingConv2D | PendingChannelBroadcast | undefined;
    if (otherPending?.kind === 'Conv2D') return sumOfConvs(conv, otherPending, backend, buffers);
    // The bias: a 1-D vector, or a still-pending broadcast of one (the second-order sweep).
    const bias = otherPending?.kind === 'ChannelBroadcast' ? otherPending.vector : other;
    if (
      bias.dtype !== 'float32' ||
      bias.shape.length !== 1 ||
      (bias === other ? false : !tf.util.arraysEqual(other.shape, conv.outShape))
    ) {
      return null;
    }
    const channels = conv.outShape[conv.outShape.length - 1];
    if (bias.shape[0] !== channels) return null;
    const sum = buffers.native(
      fusedConv2DKernel,
      { ...conv.inputs, bias },
      { ...conv.attrs, activation: 'linear' },
      backend,
    );
    if (sum == null) return null;
    if (!tf.util.arraysEqual(sum.shape, conv.outShape)) {
      backend.disposeData(sum.dataId); // cannot happen with the conv's own attributes
      return null;
    }
    buffers.countFused();
    return sum;
  },
};

/**
 * conv(xa, fa) + conv(xb, fb), both deferred and of one geometry (the second-order sweep sums
 * two such convs per conv layer): one conv of the inputs concatenated along the channels with
 * the filters stacked along their input channels, the same sum of products in one output pass
 * and no separate add. Null (Add runs as usual) where the two differ.
 */
function sumOfConvs(
  a: PendingConv2D,
  b: PendingConv2D,
  backend: tf.KernelBackend,
  buffers: KernelBuffers,
): tf.TensorInfo | null {
  const [xa, fa, xb, fb] = [
    a.inputs['x']!,
    a.inputs['filter']!,
    b.inputs['x']!,
    b.inputs['filter']!,
  ];
  const sameGeometry =
    tf.util.arraysEqual(xa.shape, xb.shape) &&
    tf.util.arraysEqual(fa.shape, fb.shape) &&
    tf.util.arraysEqual(a.outShape, b.outShape) &&
    JSON.stringify(a.attrs) === JSON.stringify(b.attrs) &&
    xa.shape.length === 4 &&
    fa.shape.length === 4;
  if (!sameGeometry || !allFloat32(xa, fa, xb, fb)) return null;
  const x2 = [...xa.shape.slice(0, 3), xa.shape[3]! * 2];
  const f2 = [fa.shape[0]!, fa.shape[1]!, fa.shape[2]! * 2, fa.shape[3]!];
  // The conv's own plan for the doubled shapes (plan() reads shapes and attributes only).
  const shapeOnly = (shape: number[]): tf.TensorInfo => ({ dataId: {}, shape, dtype: 'float32' });
  const conv = conv2DKernel.plan({ x: shapeOnly(x2), filter: shapeOnly(f2) }, a.attrs);
  if (conv == null || !tf.util.arraysEqual(conv.outShape, a.outShape)) return null;
  const summed: NativeKernel = {
    kernelName: 'Add',
    plan: () => ({
      key: `sumOfConvs|${conv.key}`,
      build: () => {
        const graph = conv.build();
        return {
          ...graph,
          nodes: [
            {
              opType: 'Concat',
              inputs: ['xa', 'xb'],
              outputs: ['x'],
              attributes: { axis: int(3) },
            },
            {
              opType: 'Concat',
              inputs: ['fa', 'fb'],
              outputs: ['filter'],
              attributes: { axis: int(2) },
            },
            ...graph.nodes,
          ],
          inputs: [
            { name: 'xa', shape: xa.shape },
            { name: 'fa', shape: fa.shape },
            { name: 'xb', shape: xb.shape },
            { name: 'fb', shape: fb.shape },
          ],
        };
      },
      inputs: [xa, fa, xb, fb],
      inputShapes: [xa.shape, fa.shape, xb.shape, fb.shape],
      outShape: a.outShape,
    }),
  };
  const sum = buffers.native(summed, {}, {}, backend);
  if (sum != null) buffers.countFused();
  return sum;
}

export const subKernel = binaryKernel('Sub', 'Sub');
const onnxMultiply = binaryKernel('Multiply', 'Mul');

/** A deferred product of a tensor and a 0/1 mask of its shape. */
export interface PendingMasked {
  kind: 'Masked';
  values: tf.TensorInfo;
  mask: tf.TensorInfo;
}

/** Data ids of Step outputs (alpha 0) with no NaN: every element is 0 or 1. */
const zeroOneMasks = new WeakSet<object>();

/**
 * Multiply; the product of a deferred MaxPoolGrad output (see max-pool-grad.ts) and a 0/1
 * mask of the same shape, relu's gradient after a max pool, without computing either pass:
 * dx * mask is +0 wherever dx is (a 0/1 mask has no NaN), and (0 + dy[k]) * mask[at] at each
 * winner, exactly what the two kernels in turn give. Other products: ONNX Runtime's Mul.
 */
export const multiplyKernel: DirectKernel & Pick<NativeKernel, 'plan' | 'defer'> = {
  kernelName: 'Multiply',
  plan: onnxMultiply.plan,
  // A product with a 0/1 mask is deferred: read by MaxPoolGradTranspose (the second-order
  // sweep through relu then max pool) it is only needed at the pool's winners.
  defer(inputs): PendingMasked | undefined {
    const a = inputs['a']!;
    const b = inputs['b']!;
    if (!tf.util.arraysEqual(a.shape, b.shape)) return undefined;
    if (zeroOneMasks.has(b.dataId)) return { kind: 'Masked', values: a, mask: b };
    if (zeroOneMasks.has(a.dataId)) return { kind: 'Masked', values: b, mask: a };
    return undefined;
  },
  run(inputs, _attrs, backend, buffers) {
    const a = inputs['a']!;
    const b = inputs['b']!;
    if (!allFloat32(a, b) || !tf.util.arraysEqual(a.shape, b.shape)) return null;
    const found = pendingOperand<MaxPoolGradInfo>(inputs, buffers, 'MaxPoolGrad');
    if (found == null || !zeroOneMasks.has(found.other.dataId)) return null;
    const { pending, other: mask } = found;
    const m = buffers.read(backend, mask.dataId);
    const dy = buffers.read(backend, pending.dy.dataId);
    const { winners } = pending;
    const out = buffers.zeros(size(a.shape));
    for (let k = 0; k < winners.length; k++) {
      const at = winners[k]!;
      if (at >= 0) out[at] = (0 + dy[k]!) * m[at]!;
    }
    buffers.countFused();
    return buffers.output(backend, a.shape, out);
  },
};
export const realDivKernel = binaryKernel('RealDiv', 'Div');

/** Sum over axes (ReduceSum); a reduction over no axes is left to TF.js. */
export const sumKernel: NativeKernel = {
  kernelName: 'Sum',
  plan(inputs, attrs): NativePlan | null {
    const x = inputs['x']!;
    if (!allFloat32(x) || size(x.shape) < MIN_ELEMENTWISE_SIZE || x.shape.length === 0) return null;
    const axes = tf.util.parseAxisParam(attrs['axis'] as number | number[], x.shape);
    if (axes.length === 0) return null;
    const keepDims = Boolean(attrs['keepDims']);
    const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const outShape = keepDims ? kept : x.shape.filter((_, i) => !axes.includes(i));
    const sorted = [...axes].sort((p, q) => p - q);
    const key = `ReduceSum|[${x.shape.join(',')}]|${sorted.join(',')}|${keepDims}`;
    const build = () => ({
      nodes: [
        {
          opType: 'ReduceSum',
          inputs: ['x', 'axes'],
          outputs: ['y'],
          attributes: { keepdims: { kind: 'int' as const, value: keepDims ? 1 : 0 } },
        },
      ],
      initializers: [{ name: 'axes', values: sorted }],
      inputs: [{ name: 'x', shape: x.shape }],
      outputs: [{ name: 'y', shape: outShape }],
    });
    return { key, build, inputs: [x], inputShapes: [x.shape], outShape };
  },
};

/**
 * Whether ONNX Runtime's own Relu gives TF.js's result (x < 0 ? 0 : x: NaN and -0 kept) on this
 * machine. The ONNX standard leaves NaN unspecified, so enableNativeKernels() checks it once
 * (reluOpMatchesTfjs) and Relu uses the one-pass operator only then.
 */
let reluOpKeepsNaN = false;

export function useReluOp(matches: boolean): void {
  reluOpKeepsNaN = matches;
}

/** Inputs on which to check ORT's Relu: NaN, -0 and infinities in a vector body and a tail. */
export function reluProbe(): { input: Float32Array; expected: Float32Array } {
  const input = Float32Array.from({ length: 1031 }, (_, i) => Math.sin(i * 12.9898) * 3);
  [0, 1, 17, 64, 513, 1030].forEach((i) => (input[i] = NaN));
  input[5] = -0;
  input[6] = Infinity;
  input[7] = -Infinity;
  return { input, expected: input.map((v) => (v < 0 ? 0 : v)) };
}

/**
 * Relu with TF.js's NaN behaviour (NaN stays NaN): ONNX Runtime's own operator where checked
 * (see useReluOp), else x < 0 ? 0 : x from Less and Where.
 */
export const reluKernel: NativeKernel = {
  kernelName: 'Relu',
  plan(inputs): NativePlan | null {
    const x = inputs['x']!;
    if (!allFloat32(x) || size(x.shape) < MIN_ELEMENTWISE_SIZE) return null;
    const op = reluOpKeepsNaN;
    const key = `Relu|[${x.shape.join(',')}]${op ? '|op' : ''}`;
    const zero = { name: 'zero', values: [0], float: true };
    const build = () =>
      op
        ? {
            nodes: [{ opType: 'Relu', inputs: ['x'], outputs: ['y'] }],
            inputs: [{ name: 'x', shape: x.shape }],
            outputs: [{ name: 'y', shape: x.shape }],
          }
        : {
            nodes: [
              { opType: 'Less', inputs: ['x', 'zero'], outputs: ['neg'] },
              { opType: 'Where', inputs: ['neg', 'zero', 'x'], outputs: ['y'] },
            ],
            initializers: [zero],
            inputs: [{ name: 'x', shape: x.shape }],
            outputs: [{ name: 'y', shape: x.shape }],
          };
    return { key, build, inputs: [x], inputShapes: [x.shape], outShape: x.shape };
  },
};

/**
 * Step (relu's gradient mask, alpha 0): x > 0 ? 1 : alpha, NaN kept, in one JS pass. Written
 * so that V8 compiles the comparison without a branch (+(v > 0)); the NaN test is a branch
 * that is never taken in practice. ~2 ms for 1.6M elements, where the ONNX graph of
 * Greater/Where/IsNaN/Where took 5-6. Memoized: a training step with second-order terms asks
 * for the same mask in the gradient and again in the HVP sweep. Other alphas (tf.step(x, a))
 * take a branching loop.
 */
export const stepKernel: DirectKernel = {
  kernelName: 'Step',
  memoize: true,
  run(inputs, attrs, backend, buffers) {
    const x = inputs['x']!;
    const alpha = (attrs['alpha'] as number | undefined) ?? 0;
    const n = size(x.shape);
    if (x.dtype !== 'float32' || n < MIN_ELEMENTWISE_SIZE) return null;
    const values = buffers.read(backend, x.dataId);
    const out = buffers.take(n);
    if (alpha === 0) {
      let nan = false;
      for (let i = 0; i < n; i++) {
        const v = values[i]!;
        out[i] = v !== v ? ((nan = true), v) : +(v > 0);
      }
      const output = buffers.output(backend, x.shape, out);
      if (!nan) zeroOneMasks.add(output.dataId);
      return output;
    } else {
      for (let i = 0; i < n; i++) {
        const v = values[i]!;
        out[i] = v !== v ? v : v > 0 ? 1 : alpha;
      }
    }
    return buffers.output(backend, x.shape, out);
  },
};

/**
 * Tile (what tf.broadcastTo runs, e.g. Sum's gradient broadcasting a bias gradient back to a
 * [128,28,28,16] activation): TF.js's cpu kernel converts every output index to coordinates
 * and back, ONNX Runtime's Tile copies blocks.
 */
/** A deferred broadcast of a [1, ..., 1, C] tensor over all axes but the last. */
export interface PendingChannelBroadcast {
  kind: 'ChannelBroadcast';
  /** The C values, as a 1-D view of the tiled tensor's data. */
  vector: tf.TensorInfo;
}

export const tileKernel: NativeKernel = {
  // Deferred when it broadcasts a per-channel vector (Sum's gradient of a bias in the
  // second-order sweep): added to a deferred conv, it becomes that conv's bias (see addKernel).
  defer(inputs, attrs): PendingChannelBroadcast | undefined {
    const x = inputs['x']!;
    const reps = attrs['reps'] as number[];
    const last = x.shape.length - 1;
    const perChannel = last >= 1 && x.shape.every((d, i) => (i === last ? reps[i] === 1 : d === 1));
    return perChannel
      ? { kind: 'ChannelBroadcast', vector: { ...x, shape: [x.shape[last]!] } }
      : undefined;
  },
  kernelName: 'Tile',
  plan(inputs, attrs): NativePlan | null {
    const x = inputs['x']!;
    const reps = attrs['reps'] as number[];
    if (!allFloat32(x) || x.shape.length === 0 || reps.length !== x.shape.length) return null;
    const outShape = x.shape.map((d, i) => d * reps[i]!);
    if (size(outShape) < MIN_ELEMENTWISE_SIZE) return null;
    const key = `Tile|[${x.shape.join(',')}]|${reps.join(',')}`;
    const build = () => ({
      nodes: [{ opType: 'Tile', inputs: ['x', 'reps'], outputs: ['y'] }],
      initializers: [{ name: 'reps', values: reps }],
      inputs: [{ name: 'x', shape: x.shape }],
      outputs: [{ name: 'y', shape: outShape }],
    });
    return { key, build, inputs: [x], inputShapes: [x.shape], outShape };
  },
};
