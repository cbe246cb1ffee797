/**
 * The kernel-to-ONNX translation table of the step graphs (see step-graph.ts): each recorded
 * TF.js kernel call becomes a few ONNX (opset 17) nodes that compute the same values to float32
 * rounding. A kernel not in the table, or a call whose attributes a rule does not cover, refuses
 * the whole step with the kernel's name, and the step stays op by op.
 */
import type { OnnxAttribute, OnnxNode, OnnxTensorInitializer } from '../onnx-model.js';
import { StepGraphRefusal, type RecordedCall, type StepDtype } from './capture.js';
import { CONV_TRANSLATIONS } from './translate-conv.js';
import { rowBlockCount } from '../kernels/reduce.js';

/** What a rule sees: its call's inputs and outputs as ONNX value names, and a node writer. */
export interface TranslationContext {
  readonly call: RecordedCall;
  /** ONNX Runtime intra-op threads the graph will run with (see UnsortedSegmentSum). */
  readonly threads: number;
  /**
   * A product whose TF.js shape is already numpy's is written straight into its output, without
   * the no-op Reshape that otherwise follows every product (build.ts `elideMatMulReshapes`;
   * first-order graphs only).
   */
  readonly elideMatMulReshapes?: boolean;
  /** The ONNX name of the kernel input called `name` (shaped as the kernel saw it). */
  input(name: string): string;
  hasInput(name: string): boolean;
  /** The input read in another shape of the same size (a free reshape). */
  inputAs(name: string, shape: readonly number[]): string;
  /** The values of an input that is a small constant made in JS, else null. */
  constantValues(name: string): number[] | null;
  inputShape(name: string): number[];
  inputDtype(name: string): StepDtype;
  /** Input names in the kernel's order (AddN and Concat take lists). */
  inputNames(): string[];
  output(i?: number): string;
  outputShape(i?: number): number[];
  outputDtype(i?: number): StepDtype;
  /** A fresh intermediate name. */
  temp(): string;
  node(
    opType: string,
    inputs: string[],
    outputs: string[],
    attributes?: Record<string, OnnxAttribute>,
    /** An operator domain other than ONNX's (translate-conv.ts's com.microsoft.nchwc). */
    domain?: string,
  ): void;
  /** A constant int64 1-D tensor (shapes, axes, repeats). */
  int64s(values: readonly number[]): string;
  /** A constant scalar of the given dtype. */
  scalar(value: number, dtype: StepDtype): string;
  /** A constant 1-D tensor of the given dtype. */
  vector(values: readonly number[], dtype: StepDtype): string;
}

type Rule = (ctx: TranslationContext) => void;

const ints = (value: readonly number[]): OnnxAttribute => ({ kind: 'ints', value });
const int = (value: number): OnnxAttribute => ({ kind: 'int', value });

const ONNX_TO: Record<StepDtype, number> = { float32: 1, int32: 6, bool: 9 };

function attr<T>(ctx: TranslationContext, name: string): T {
  return ctx.call.attrs[name] as T;
}

function refuse(ctx: TranslationContext, why: string): never {
  throw new StepGraphRefusal(`${ctx.call.kernelName}: ${why}`);
}

/** Normalised, sorted, non-negative reduction axes; null means all axes. */
function axesOf(raw: unknown, rank: number): number[] {
  if (raw == null) return Array.from({ length: rank }, (_, i) => i);
  const list = Array.isArray(raw) ? (raw as number[]) : [raw as number];
  return [...new Set(list.map((a) => (a < 0 ? a + rank : a)))].sort((a, b) => a - b);
}

/** Writes `x` reshaped to the output's shape (reshape-like kernels and identities). */
const reshapeToOutput: Rule = (ctx) => {
  const x = ctx.input(ctx.inputNames()[0]!);
  ctx.node('Reshape', [x, ctx.int64s(ctx.outputShape())], [ctx.output()]);
};

const unary =
  (opType: string): Rule =>
  (ctx) =>
    ctx.node(opType, [ctx.input('x')], [ctx.output()]);

/** Element-wise binary ops broadcast as numpy does, in TF.js as in ONNX. */
const binary =
  (opType: string, floatOnly = false): Rule =>
  (ctx) => {
    if (floatOnly && ctx.inputDtype('a') !== 'float32') refuse(ctx, `dtype ${ctx.inputDtype('a')}`);
    ctx.node(opType, sameSizeOperands(ctx), [ctx.output()]);
  };

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * a and b, read in the output's shape when both have its size ([1, n, m] with [n, m]):
 * the same elements in one shape, so that no broadcasting is asked for (no gain measured
 * alone: bench/speed/js-vs-onnx.ts found a rank-mismatched Mul as fast as a flat one).
 */
function sameSizeOperands(ctx: TranslationContext): [string, string] {
  const out = ctx.outputShape();
  const n = sizeOf(out);
  if (sizeOf(ctx.inputShape('a')) === n && sizeOf(ctx.inputShape('b')) === n) {
    return [ctx.inputAs('a', out), ctx.inputAs('b', out)];
  }
  return [ctx.input('a'), ctx.input('b')];
}

const reduce =
  (opType: 'ReduceSum' | 'ReduceMean' | 'ReduceMax' | 'ReduceMin', axisAttr: string): Rule =>
  (ctx) => {
    const shape = ctx.inputShape('x');
    const reducedAxes = new Set(axesOf(attr(ctx, axisAttr), shape.length));
    if (opType === 'ReduceMean' && ctx.inputDtype('x') !== 'float32') refuse(ctx, 'int mean');
    // Size-1 axes go first, and neighbouring axes of one kind are merged: [4096, 64, 1] over
    // axis 1 is [4096, 64] over its last axis, which ONNX Runtime reduces several times
    // faster (over a size-1 axis alone it copied at the speed of a general reduction).
    const merged: { size: number; reduced: boolean }[] = [];
    shape.forEach((size, axis) => {
      if (size === 1) return;
      const reduced = reducedAxes.has(axis);
      const last = merged.at(-1);
      if (last != null && last.reduced === reduced) last.size *= size;
      else merged.push({ size, reduced });
    });
    const out = ctx.output();
    if (!merged.some((m) => m.reduced)) {
      ctx.node('Reshape', [ctx.input('x'), ctx.int64s(ctx.outputShape())], [out]);
      return;
    }
    const x = ctx.inputAs(
      'x',
      merged.map((m) => m.size),
    );
    const axes = merged.flatMap((m, i) => (m.reduced ? [i] : []));
    const reduced = ctx.temp();
    const node = (input: string, over: number[], output: string) => {
      if (opType === 'ReduceSum') {
        ctx.node(opType, [input, ctx.int64s(over)], [output], { keepdims: int(0) });
      } else {
        ctx.node(opType, [input], [output], { axes: ints(over), keepdims: int(0) });
      }
    };
    const blocks = opType === 'ReduceSum' || opType === 'ReduceMean' ? rowBlocks(ctx, merged) : 1;
    if (blocks > 1) {
      // [R, N] over its rows (a conv's bias gradient, batch norm's per-channel sums) on several
      // threads, as [k, R/k, N] over the middle axis, then over k (kernels/reduce.ts
      // rowBlockCount says why). One thread keeps the plain reduction (its rounding).
      const [rows, cols] = [merged[0]!.size, merged[1]!.size];
      const partial = ctx.temp();
      node(ctx.inputAs('x', [blocks, rows / blocks, cols]), [1], partial);
      node(partial, [0], reduced);
    } else {
      node(x, axes, reduced);
    }
    // The output shape TF.js reports decides (keepDims or not).
    ctx.node('Reshape', [reduced, ctx.int64s(ctx.outputShape())], [out]);
  };

/** For a sum or mean of [R, N] over its R rows: rowBlockCount's k, else 1. */
function rowBlocks(ctx: TranslationContext, merged: { size: number; reduced: boolean }[]): number {
  if (merged.length !== 2 || !merged[0]!.reduced) return 1;
  return rowBlockCount(merged[0]!.size, ctx.threads);
}

/** a @ b with TF.js's transpose flags (the last two axes), batch axes broadcast. */
function matMul(ctx: TranslationContext, out: string): void {
  const side = (name: 'a' | 'b', flag: string) => {
    const x = ctx.input(name);
    if (!attr<boolean>(ctx, flag)) return x;
    const rank = ctx.inputShape(name).length;
    const perm = Array.from({ length: rank }, (_, i) => i);
    [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
    const t = ctx.temp();
    ctx.node('Transpose', [x], [t], { perm: ints(perm) });
    return t;
  };
  const a = side('a', 'transposeA');
  const b = side('b', 'transposeB');
  if (ctx.elideMatMulReshapes === true && out === ctx.output() && sameRankProduct(ctx)) {
    ctx.node('MatMul', [a, b], [out]);
    return;
  }
  const product = ctx.temp();
  ctx.node('MatMul', [a, b], [product]);
  // TF.js's batch shape can differ from numpy's broadcast in rank only: the output shape decides.
  ctx.node('Reshape', [product, ctx.int64s(ctx.outputShape())], [out]);
}

/** Whether ONNX's MatMul gives TF.js's output shape: equal ranks and batch dimensions. */
function sameRankProduct(ctx: TranslationContext): boolean {
  const a = ctx.inputShape('a');
  const b = ctx.inputShape('b');
  const out = ctx.outputShape();
  const rank = out.length;
  return (
    a.length === rank &&
    b.length === rank &&
    out.slice(0, -2).every((d, i) => a[i] === d && b[i] === d)
  );
}

function activation(ctx: TranslationContext, x: string, out: string): void {
  const kind = attr<string | undefined>(ctx, 'activation') ?? 'linear';
  switch (kind) {
    case 'linear':
      ctx.node('Identity', [x], [out]);
      return;
    case 'relu':
      ctx.node('Relu', [x], [out]);
      return;
    case 'sigmoid':
      ctx.node('Sigmoid', [x], [out]);
      return;
    case 'elu':
      ctx.node('Elu', [x], [out]);
      return;
    case 'leakyrelu':
      ctx.node('LeakyRelu', [x], [out], {
        alpha: { kind: 'float', value: attr<number>(ctx, 'leakyreluAlpha') },
      });
      return;
    default:
      refuse(ctx, `fused activation '${kind}'`);
  }
}

/** TF.js's cpu batch norm reads its parameters cyclically: that is numpy broadcasting when
 * each parameter's shape is a suffix of x's (or a single value). */
function batchNormParam(ctx: TranslationContext, name: string): string {
  const shape = ctx.inputShape(name);
  const xShape = ctx.inputShape('x');
  const size = shape.reduce((a, b) => a * b, 1);
  const trimmed = [...shape];
  while (trimmed.length > 1 && trimmed[0] === 1) trimmed.shift();
  const suffix = xShape.slice(xShape.length - trimmed.length);
  if (size !== 1 && trimmed.join(',') !== suffix.join(',')) {
    refuse(ctx, `parameter '${name}' [${shape}] is not a suffix of x [${xShape}]`);
  }
  return ctx.input(name);
}

export const TRANSLATIONS: Readonly<Record<string, Rule>> = {
  // Convolutions and pooling (translate-conv.ts).
  ...CONV_TRANSLATIONS,
  Identity: (ctx) => ctx.node('Identity', [ctx.input('x')], [ctx.output()]),
  Reshape: reshapeToOutput,
  ExpandDims: reshapeToOutput,
  Squeeze: reshapeToOutput,
  Cast: (ctx) => {
    const to = attr<StepDtype>(ctx, 'dtype');
    if (to === ctx.inputDtype('x')) return ctx.node('Identity', [ctx.input('x')], [ctx.output()]);
    if (!(to in ONNX_TO)) refuse(ctx, `to ${to}`);
    ctx.node('Cast', [ctx.input('x')], [ctx.output()], { to: int(ONNX_TO[to]) });
  },
  Add: binary('Add'),
  Sub: binary('Sub'),
  Multiply: binary('Mul'),
  RealDiv: binary('Div', true),
  Maximum: binary('Max'),
  Minimum: binary('Min'),
  Pow: (ctx) => {
    // A constant exponent as cheaper ops (std::pow per element was 10 ms a call here).
    const e = ctx.constantValues('b');
    const out = ctx.output();
    if (
      e != null &&
      e.length === 1 &&
      ctx.inputDtype('a') === 'float32' &&
      sizeOf(ctx.inputShape('a')) === sizeOf(ctx.outputShape())
    ) {
      const x = ctx.inputAs('a', ctx.outputShape());
      const k = e[0]!;
      const t = ctx.temp();
      if (k === 1) return ctx.node('Identity', [x], [out]);
      if (k === 2) return ctx.node('Mul', [x, x], [out]);
      if (k === 0.5) return ctx.node('Sqrt', [x], [out]);
      if (k === -1) return ctx.node('Reciprocal', [x], [out]);
      if (k === -0.5) {
        ctx.node('Sqrt', [x], [t]);
        return ctx.node('Reciprocal', [t], [out]);
      }
      if (k === 3) {
        ctx.node('Mul', [x, x], [t]);
        return ctx.node('Mul', [t, x], [out]);
      }
    }
    binary('Pow', true)(ctx);
  },
  Equal: binary('Equal'),
  NotEqual: (ctx) => {
    const eq = ctx.temp();
    ctx.node('Equal', [ctx.input('a'), ctx.input('b')], [eq]);
    ctx.node('Not', [eq], [ctx.output()]);
  },
  Greater: binary('Greater'),
  GreaterEqual: binary('GreaterOrEqual'),
  Less: binary('Less'),
  LessEqual: binary('LessOrEqual'),
  LogicalAnd: binary('And'),
  LogicalOr: binary('Or'),
  LogicalNot: unary('Not'),
  SquaredDifference: (ctx) => {
    const d = ctx.temp();
    ctx.node('Sub', [ctx.input('a'), ctx.input('b')], [d]);
    ctx.node('Mul', [d, d], [ctx.output()]);
  },
  AddN: (ctx) =>
    ctx.node(
      'Sum',
      ctx.inputNames().map((n) => ctx.input(n)),
      [ctx.output()],
    ),
  Neg: unary('Neg'),
  Exp: unary('Exp'),
  Log: unary('Log'),
  Sqrt: unary('Sqrt'),
  Abs: unary('Abs'),
  Erf: unary('Erf'),
  Tanh: unary('Tanh'),
  Sigmoid: unary('Sigmoid'),
  Relu: unary('Relu'),
  Sign: unary('Sign'),
  Floor: unary('Floor'),
  Reciprocal: unary('Reciprocal'),
  Square: (ctx) => {
    const x = ctx.input('x');
    ctx.node('Mul', [x, x], [ctx.output()]);
  },
  Rsqrt: (ctx) => {
    const s = ctx.temp();
    ctx.node('Sqrt', [ctx.input('x')], [s]);
    ctx.node('Reciprocal', [s], [ctx.output()]);
  },
  Log1p: (ctx) => {
    const s = ctx.temp();
    ctx.node('Add', [ctx.input('x'), ctx.scalar(1, 'float32')], [s]);
    ctx.node('Log', [s], [ctx.output()]);
  },
  Step: (ctx) => {
    // x > 0 ? 1 : alpha (NaN: TF.js keeps NaN).
    const x = ctx.input('x');
    const alpha = attr<number>(ctx, 'alpha') ?? 0;
    if (alpha === 0) {
      // relu's mask, without Where (slow in ONNX Runtime): Cast(x > 0) / Cast(x == x) is
      // 1 / 1, +0 / 1 or, for NaN only, 0 / 0 = NaN, exactly by IEEE arithmetic (pinned against
      // TF.js's kernel on special values in test/native/step-graph/step-mask.test.ts).
      const gt = ctx.temp();
      const mask = ctx.temp();
      const same = ctx.temp();
      const notNaN = ctx.temp();
      ctx.node('Greater', [x, ctx.scalar(0, 'float32')], [gt]);
      ctx.node('Cast', [gt], [mask], { to: int(1) });
      ctx.node('Equal', [x, x], [same]);
      ctx.node('Cast', [same], [notNaN], { to: int(1) });
      ctx.node('Div', [mask, notNaN], [ctx.output()]);
      return;
    }
    const gt = ctx.temp();
    const stepped = ctx.temp();
    const nan = ctx.temp();
    ctx.node('Greater', [x, ctx.scalar(0, 'float32')], [gt]);
    ctx.node('Where', [gt, ctx.scalar(1, 'float32'), ctx.scalar(alpha, 'float32')], [stepped]);
    ctx.node('IsNaN', [x], [nan]);
    ctx.node('Where', [nan, x, stepped], [ctx.output()]);
  },
  ReluGrad: (ctx) => {
    // dy * step(x): x > 0 ? dy : 0, NaN where x is NaN (src/kernels/relu-grad.ts).
    const x = ctx.input('x');
    const gt = ctx.temp();
    const mask = ctx.temp();
    const nan = ctx.temp();
    const masked = ctx.temp();
    ctx.node('Greater', [x, ctx.scalar(0, 'float32')], [gt]);
    ctx.node('Cast', [gt], [mask], { to: int(1) });
    ctx.node('IsNaN', [x], [nan]);
    ctx.node('Where', [nan, x, mask], [masked]);
    ctx.node('Mul', [ctx.input('dy'), masked], [ctx.output()]);
  },
  Select: (ctx) => {
    let cond = ctx.input('condition');
    const cShape = ctx.inputShape('condition');
    const tShape = ctx.inputShape('t');
    if (cShape.length === 1 && tShape.length > 1) {
      // TF.js selects whole rows with a 1-D condition.
      const r = ctx.temp();
      ctx.node('Reshape', [cond, ctx.int64s([cShape[0]!, ...tShape.slice(1).map(() => 1)])], [r]);
      cond = r;
    }
    ctx.node('Where', [cond, ctx.input('t'), ctx.input('e')], [ctx.output()]);
  },
  Sum: reduce('ReduceSum', 'axis'),
  Mean: reduce('ReduceMean', 'axis'),
  Max: reduce('ReduceMax', 'reductionIndices'),
  Min: reduce('ReduceMin', 'axis'),
  Tile: (ctx) => {
    const reps = attr<number[]>(ctx, 'reps');
    const shape = ctx.inputShape('x');
    // Repeating size-1 axes only is a broadcast: Expand, faster than Tile in ONNX Runtime.
    const broadcast = reps.every((r, a) => r === 1 || shape[a] === 1);
    if (broadcast) {
      ctx.node('Expand', [ctx.input('x'), ctx.int64s(ctx.outputShape())], [ctx.output()]);
    } else {
      ctx.node('Tile', [ctx.input('x'), ctx.int64s(reps)], [ctx.output()]);
    }
  },
  BroadcastTo: (ctx) =>
    ctx.node('Expand', [ctx.input('x'), ctx.int64s(ctx.outputShape())], [ctx.output()]),
  Transpose: (ctx) =>
    ctx.node('Transpose', [ctx.input('x')], [ctx.output()], {
      perm: ints(attr<number[]>(ctx, 'perm')),
    }),
  Softmax: (ctx) => {
    const rank = ctx.inputShape('logits').length;
    const dim = attr<number>(ctx, 'dim');
    if (dim !== -1 && dim !== rank - 1) refuse(ctx, `softmax over axis ${dim}`);
    ctx.node('Softmax', [ctx.input('logits')], [ctx.output()], { axis: int(-1) });
  },
  BatchMatMul: (ctx) => matMul(ctx, ctx.output()),
  _FusedMatMul: (ctx) => {
    if (ctx.hasInput('preluActivationWeights')) refuse(ctx, 'prelu activation');
    let y = ctx.temp();
    matMul(ctx, y);
    if (ctx.hasInput('bias')) {
      const biased = ctx.temp();
      ctx.node('Add', [y, ctx.input('bias')], [biased]);
      y = biased;
    }
    activation(ctx, y, ctx.output());
  },
  FusedBatchNorm: (ctx) => {
    // offset + (x - mean) * scale / sqrt(variance + epsilon), as TF.js's cpu kernel.
    const eps = attr<number>(ctx, 'varianceEpsilon');
    const centred = ctx.temp();
    ctx.node('Sub', [ctx.input('x'), batchNormParam(ctx, 'mean')], [centred]);
    let scaled = centred;
    if (ctx.hasInput('scale')) {
      scaled = ctx.temp();
      ctx.node('Mul', [centred, batchNormParam(ctx, 'scale')], [scaled]);
    }
    const varEps = ctx.temp();
    const std = ctx.temp();
    const normed = ctx.temp();
    ctx.node('Add', [batchNormParam(ctx, 'variance'), ctx.scalar(eps, 'float32')], [varEps]);
    ctx.node('Sqrt', [varEps], [std]);
    const last = ctx.hasInput('offset') ? normed : ctx.temp();
    ctx.node('Div', [scaled, std], [last]);
    const outShape = ctx.outputShape();
    const y = ctx.temp();
    if (ctx.hasInput('offset')) ctx.node('Add', [normed, batchNormParam(ctx, 'offset')], [y]);
    else ctx.node('Identity', [last], [y]);
    ctx.node('Reshape', [y, ctx.int64s(outShape)], [ctx.output()]);
  },
  GatherV2: (ctx) => {
    if ((attr<number>(ctx, 'batchDims') ?? 0) !== 0) refuse(ctx, 'batchDims');
    const rank = ctx.inputShape('x').length;
    const axis = attr<number>(ctx, 'axis');
    ctx.node('Gather', [ctx.input('x'), ctx.input('indices')], [ctx.output()], {
      axis: int(axis < 0 ? axis + rank : axis),
    });
  },
  UnsortedSegmentSum: (ctx) => {
    // Zeros [numSegments, ...] with every row of x added at its segment (ScatterND, 'add').
    // TF.js drops ids outside [0, numSegments); ONNX would fail on them: such data never
    // reaches here unless the ids are labels out of range, which the gather before refused.
    const ids = ctx.input('segmentIds');
    const n = ctx.inputShape('segmentIds');
    if (n.length !== 1) refuse(ctx, `segment ids of rank ${n.length}`);
    const ids64 = ctx.temp();
    ctx.node('Cast', [ids], [ids64], { to: int(7) });
    if (ctx.threads > 1) {
      // ONNX Runtime's ScatterND 'add' loses updates to repeated ids when it runs on more than
      // one thread (microsoft/onnxruntime#18048; the step's check caught it on the transformer's
      // embedding gradient). So on several threads: onehot(ids)^T x, one product (ids outside
      // [0, numSegments) give a zero row: dropped, as TF.js drops them). On one thread the
      // scatter stays: it is what the results commands ran, and its sums are sequential.
      const out = ctx.outputShape();
      const segments = out[0]!;
      const rest = out.slice(1).reduce((a, b) => a * b, 1);
      const hot = ctx.temp();
      const summed = ctx.temp();
      const dtype = ctx.outputDtype();
      if (dtype !== 'float32') refuse(ctx, `${dtype} segment sums on ${ctx.threads} threads`);
      ctx.node('OneHot', [ids64, ctx.int64s([segments]), ctx.vector([0, 1], dtype)], [hot], {
        axis: int(-1),
      });
      ctx.node('Gemm', [hot, ctx.inputAs('x', [n[0]!, rest])], [summed], { transA: int(1) });
      ctx.node('Reshape', [summed, ctx.int64s(out)], [ctx.output()]);
      return;
    }
    const idx = ctx.temp();
    const zeros = ctx.temp();
    ctx.node('Reshape', [ids64, ctx.int64s([n[0]!, 1])], [idx]);
    ctx.node('Expand', [ctx.scalar(0, ctx.outputDtype()), ctx.int64s(ctx.outputShape())], [zeros]);
    ctx.node('ScatterND', [zeros, idx, ctx.input('x')], [ctx.output()], {
      reduction: { kind: 'string', value: 'add' },
    });
  },
  ZerosLike: (ctx) =>
    ctx.node(
      'Expand',
      [ctx.scalar(0, ctx.outputDtype()), ctx.int64s(ctx.outputShape())],
      [ctx.output()],
    ),
  OnesLike: (ctx) =>
    ctx.node(
      'Expand',
      [ctx.scalar(1, ctx.outputDtype()), ctx.int64s(ctx.outputShape())],
      [ctx.output()],
    ),
  Fill: (ctx) =>
    ctx.node(
      'Expand',
      [ctx.scalar(attr<number>(ctx, 'value'), ctx.outputDtype()), ctx.int64s(ctx.outputShape())],
      [ctx.output()],
    ),
  Concat: (ctx) => {
    const names = ctx.inputNames();
    const rank = ctx.inputShape(names[0]!).length;
    const axis = attr<number>(ctx, 'axis');
    ctx.node(
      'Concat',
      names.map((n) => ctx.input(n)),
      [ctx.output()],
      {
        axis: int(axis < 0 ? axis + rank : axis),
      },
    );
  },
  Slice: (ctx) => {
    const begin = attr<number[]>(ctx, 'begin');
    const shape = ctx.inputShape('x');
    const size = attr<number[]>(ctx, 'size').map((s, i) => (s === -1 ? shape[i]! - begin[i]! : s));
    const axes = begin.map((_, i) => i);
    ctx.node(
      'Slice',
      [
        ctx.input('x'),
        ctx.int64s(begin),
        ctx.int64s(begin.map((b, i) => b + size[i]!)),
        ctx.int64s(axes),
      ],
      [ctx.output()],
    );
  },
  OneHot: (ctx) => {
    // ONNX counts negative indices from the end where TF.js gives a row of offValue: labels
    // are never negative in practice, and a wrong one would differ here, not fail.
    const depth = attr<number>(ctx, 'depth');
    const hot = ctx.temp();
    const onOff = ctx.vector(
      [attr<number>(ctx, 'offValue'), attr<number>(ctx, 'onValue')],
      ctx.outputDtype(),
    );
    ctx.node('OneHot', [ctx.input('indices'), ctx.int64s([depth]), onOff], [hot], {
      axis: int(-1),
    });
    ctx.node('Reshape', [hot, ctx.int64s(ctx.outputShape())], [ctx.output()]);
  },
  ArgMax: (ctx) => {
    // Both take the first of equal largest values (ONNX's select_last_index 0); ONNX gives int64.
    const shape = ctx.inputShape('x');
    const axes = axesOf(attr(ctx, 'axis'), shape.length);
    if (axes.length !== 1) refuse(ctx, `axes [${axes}]`);
    const index = ctx.temp();
    ctx.node('ArgMax', [ctx.input('x')], [index], { axis: int(axes[0]!), keepdims: int(0) });
    ctx.node('Cast', [index], [ctx.output()], { to: int(ONNX_TO.int32) });
  },
};

/** The kernels a step graph can contain. */
export const STEP_GRAPH_KERNELS: readonly string[] = Object.keys(TRANSLATIONS);

/** Raw bytes of a typed array (for initializers). */
export function rawBytes(
  values: Float32Array | Int32Array | Uint8Array | BigInt64Array,
): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength).slice();
}

export type { OnnxNode, OnnxTensorInitializer };
