/**
 * Step-graph translations (see translate.ts) of the convolution and pooling kernels: what a
 * CNN's or ResNet's AdaHessian step records (forward, gradient and Hessian-vector sweep).
 *
 * Convolutions and MaxPool/AvgPool reuse the native kernels' own graphs (src/native/kernels/
 * conv.ts, pool.ts), built for one call and spliced in: the call's inputs are handed to the
 * native kernel's planner as shape-only tensor infos, and its graph's names are renamed into
 * the step graph (inputs to the call's inputs, constants to step-graph constants, everything
 * else under a fresh prefix). So each kernel maps to ONNX as it does on the native path:
 *   - Conv2D, FusedConv2D, DepthwiseConv2dNative, FusedDepthwiseConv2D: NHWC -> NCHW
 *     Transpose, Conv ('same' as explicit pads, the far side derived from TF.js's output size;
 *     a channel bias as Conv's own bias), Transpose back, then the fused activation;
 *   - Conv2DBackpropInput and the depthwise one: ConvTranspose between the same transposes;
 *   - Conv2DBackpropFilter: one MatMul per filter tap of shifted strided slices of the padded
 *     input (depthwise: a Conv with batch and channels swapped); dy transposed once for all taps
 *     by NCHWc reorders where they fit (conv2DBackpropFilterTransposedOnce), and for one input
 *     channel one product of the taps' patch matrix (oneChannelPatches); where the sweep
 *     multiplies the gradient's taps again, filter-grad-pairs.ts stacks both into one product;
 *   - MaxPool, AvgPool: MaxPool / AveragePool (count_include_pad 0) between transposes.
 * A call whose geometry the native planner declines refuses the step (its message names it).
 * The transposes sit at every kernel's edges; ONNX Runtime's transpose optimizer pushes them
 * through the element-wise ops between kernels (bias add, relu and their gradients) and cancels
 * the pairs that meet. Its NCHWc rewrite (MLAS's blocked layout, its fastest convolutions) only
 * takes Convs whose weights are constants, and ours are graph inputs. So where ONNX Runtime
 * has the NCHWc kernels, Conv2D, FusedConv2D and the stride-1 Conv2DBackpropInput are written as its
 * com.microsoft.nchwc Conv directly (nchwcConv below): the filter reordered into MLAS's blocks
 * by a Reshape and a Transpose in the graph, the NHWC input blocked by ReorderInput and the
 * output written back as NHWC by ReorderOutput (no transposes); the backprop input as the
 * convolution of dy with the spatially flipped filter, in and out channels swapped.
 *
 * MaxPoolGrad and its transpose (our second-order kernel, src/kernels/max-pool-grad.ts) have no
 * ONNX operator and no native graph (they run in JS there). TF.js's winner of a window is its
 * first strict maximum in row-major order, padding excluded, NaN and -Infinity never (a window
 * of only those has none).
 *   - Windows that tile the input (stride = filter, no padding: the CNN's 2x2 pools) take
 *     TF.js's own scan over the window positions, each a slice of an NHWC view (tiledWinners):
 *     the cheapest of the variants measured (docs/PERFORMANCE.md, seventh session). Where they
 *     tile it exactly, the transpose reads dxBar at the winners by one GatherElements
 *     (max-pool-indices.ts; tenth session).
 *   - Elsewhere ONNX's MaxPool gives each window's argmax as a second output (flat NCHW
 *     indices). ONNX Runtime starts from the window's first element and takes later ones only
 *     when strictly greater: the same first strict maximum, except that a NaN or -Infinity
 *     first element would win. So NaN is replaced by -Infinity before pooling, and a window
 *     whose maximum is -Infinity (no winner in TF.js) is masked to zero. MaxPoolGrad scatters
 *     dy to the indices (ScatterElements, reduction 'add': overlapping windows add up);
 *     MaxPoolGradTranspose gathers dxBar from them (GatherElements).
 * The gradients of one pooling recompute the same winners; ONNX Runtime's common-subexpression
 * elimination merges the copies.
 *
 * AvgPoolGrad (TF.js's cpu kernel: dy spread over each window, divided by the full window size
 * even where the window covers padding) is a depthwise ConvTranspose with a constant filter of
 * 1 / (filter height * width): the native depthwise backprop-input graph with that filter.
 */
import type * as tf from '@tensorflow/tfjs';
import {
  encodeOnnxModel,
  NCHWC_DOMAIN,
  type OnnxAttribute,
  type OnnxGraph,
  type OnnxNode,
} from '../onnx-model.js';
import { loadOnnxRuntime } from '../onnx-runtime.js';
import {
  convInfo,
  conv2DBackpropFilterKernel,
  conv2DBackpropInputKernel,
  conv2DKernel,
  depthwiseBackpropFilterKernel,
  depthwiseBackpropInputKernel,
  depthwiseConv2DKernel,
  fusedConv2DKernel,
  fusedDepthwiseConv2DKernel,
} from '../kernels/conv.js';
import { planActivation } from '../kernels/activation.js';
import { avgPoolKernel, maxPoolKernel } from '../kernels/pool.js';
import type { NativeKernel } from '../kernels/types.js';
import { MAX_POOL_GRAD_TRANSPOSE } from '../../kernels/max-pool-grad.js';
import { maxPoolInfo } from '../../kernels/max-pool-winners.js';
import { StepGraphRefusal } from './capture.js';
import type { TranslationContext } from './translate.js';
import {
  EXACT_FLOAT32_INTEGERS,
  gatheredMaxPoolGradTranspose,
  maxPoolGatherEnabled,
} from './max-pool-indices.js';

type Rule = (ctx: TranslationContext) => void;

const ints = (value: readonly number[]): OnnxAttribute => ({ kind: 'ints', value });
const int = (value: number): OnnxAttribute => ({ kind: 'int', value });

const NHWC_TO_NCHW = [0, 3, 1, 2];
const NCHW_TO_NHWC = [0, 2, 3, 1];

function refuse(ctx: TranslationContext, why: string): never {
  throw new StepGraphRefusal(`${ctx.call.kernelName}: ${why}`);
}

/** Shape-only tensor infos for a native planner (it reads shapes and dtypes, never data). */
function shapeInfos(
  ctx: TranslationContext,
  names: readonly string[],
): { infos: tf.NamedTensorInfoMap; nameOf: Map<tf.TensorInfo, string> } {
  const infos: tf.NamedTensorInfoMap = {};
  const nameOf = new Map<tf.TensorInfo, string>();
  for (const name of names) {
    const info = { dataId: {}, shape: ctx.inputShape(name), dtype: ctx.inputDtype(name) };
    infos[name] = info as tf.TensorInfo;
    nameOf.set(info as tf.TensorInfo, name);
  }
  return { infos, nameOf };
}

/**
 * Splices the native kernel's graph for this call into the step graph, writing the call's
 * output; `extraInputs` are step-graph values fed to planner inputs that are not the call's
 * (AvgPoolGrad's constant filter), by planner input name.
 */
function splice(
  ctx: TranslationContext,
  kernel: NativeKernel,
  attrs: tf.NamedAttrMap,
  extraInputs: Record<string, { name: string; shape: number[] }> = {},
): void {
  const { infos, nameOf } = shapeInfos(ctx, ctx.inputNames());
  const extraOf = new Map<tf.TensorInfo, string>();
  for (const [key, extra] of Object.entries(extraInputs)) {
    const info = { dataId: {}, shape: extra.shape, dtype: 'float32' } as tf.TensorInfo;
    infos[key] = info;
    extraOf.set(info, extra.name);
  }
  const plan = kernel.plan(infos, attrs);
  if (plan == null)
    refuse(ctx, `a geometry the native kernel does not take (${JSON.stringify(attrs)})`);
  const graph = plan.build();
  if ((graph.tensorInitializers?.length ?? 0) > 0 || graph.outputs.length !== 1) {
    refuse(ctx, 'an unexpected native graph');
  }
  const prefix = `${ctx.temp()}_`;
  const rename = new Map<string, string>();
  graph.inputs.forEach((input, k) => {
    const info = plan.inputs[k]!;
    const extra = extraOf.get(info);
    if (extra != null) {
      rename.set(input.name, extra);
      return;
    }
    const name = nameOf.get(info);
    if (name == null) refuse(ctx, `native graph input '${input.name}' is none of the call's`);
    rename.set(input.name, ctx.inputAs(name, plan.inputShapes[k]!));
  });
  for (const init of graph.initializers ?? []) {
    rename.set(
      init.name,
      init.float === true ? ctx.vector(init.values, 'float32') : ctx.int64s(init.values),
    );
  }
  const out = ctx.outputShape();
  const sameShape = plan.outShape.join(',') === out.join(',');
  const graphOut = graph.outputs[0]!.name;
  rename.set(graphOut, sameShape ? ctx.output() : `${prefix}${graphOut}`);
  const nameOfValue = (n: string) => (n === '' ? n : (rename.get(n) ?? `${prefix}${n}`));
  for (const node of graph.nodes) {
    ctx.node(
      node.opType,
      node.inputs.map(nameOfValue),
      node.outputs.map(nameOfValue),
      node.attributes as Record<string, OnnxAttribute> | undefined,
      node.domain,
    );
  }
  if (!sameShape) ctx.node('Reshape', [rename.get(graphOut)!, ctx.int64s(out)], [ctx.output()]);
}

let nchwcBlock: number | undefined;

/**
 * MLAS's NCHWc channel block (8 with AVX2, 16 with AVX-512), or 0 where ONNX Runtime has no
 * NCHWc kernels or ADAHESSIAN_NCHWC=0 (benchmarks' A/B). Probed once: ReorderInput pads 4
 * channels up to one block.
 */
export function nchwcBlockSize(): number {
  if (process.env['ADAHESSIAN_NCHWC'] === '0') return 0;
  if (nchwcBlock !== undefined) return nchwcBlock;
  const runtime = loadOnnxRuntime();
  if (runtime == null) return 0; // not remembered: a test may load the runtime later
  nchwcBlock = 0;
  const shape = [1, 4, 1, 1];
  const bytes = encodeOnnxModel({
    nodes: [{ opType: 'ReorderInput', domain: NCHWC_DOMAIN, inputs: ['x'], outputs: ['y'] }],
    inputs: [{ name: 'x', shape }],
    outputs: [{ name: 'y', shape }],
  });
  type ProbeSession = {
    loadModel(b: ArrayBuffer, offset: number, length: number, options: object): void;
    run(feeds: object, fetches: object, options: object): Record<string, { dims: number[] }>;
    dispose(): void;
  };
  try {
    const session = new runtime.binding.binding.InferenceSession() as unknown as ProbeSession;
    session.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'disabled',
      logSeverityLevel: 3,
    });
    try {
      const x = new runtime.Tensor('float32', new Float32Array(4), shape);
      const block = session.run({ x }, { y: null }, {})['y']!.dims[1]!;
      if (block >= 4 && block % 4 === 0) nchwcBlock = block;
    } finally {
      session.dispose();
    }
  } catch {
    // No NCHWc kernels in this build of ONNX Runtime: the plain Conv path.
  }
  return nchwcBlock;
}

/**
 * A TF.js [kh, kw, a, b] filter in MLAS's NCHWc filter layout, as ONNX's [O, I, kh, kw] shape:
 * O = b, I = a (a forward conv), or O = a, I = b when `swapped` (the backprop input's conv).
 * Inputs of a whole number of blocks take OIHWBiBo ([O/B, I/B, kh, kw, Bi, Bo]); fewer input
 * channels than a block take OIHWBo ([O/B, I, kh, kw, Bo]) and an unblocked NCHW input.
 */
function nchwcFilter(
  ctx: TranslationContext,
  filter: string,
  shape: number[],
  swapped: boolean,
  block: number,
): string {
  const [kh, kw, a, b] = shape as [number, number, number, number];
  const [o, i] = swapped ? [a, b] : [b, a];
  const blockedIn = i % block === 0;
  let view: number[];
  let perm: number[];
  if (blockedIn) {
    view = [kh, kw, a / block, block, b / block, block];
    perm = swapped ? [2, 4, 0, 1, 5, 3] : [4, 2, 0, 1, 3, 5];
  } else if (swapped) {
    view = [kh, kw, a / block, block, b];
    perm = [2, 4, 0, 1, 3];
  } else {
    view = [kh, kw, a, b / block, block];
    perm = [3, 2, 0, 1, 4];
  }
  const viewed = ctx.temp();
  const blocked = ctx.temp();
  const out = ctx.temp();
  ctx.node('Reshape', [filter, ctx.int64s(view)], [viewed]);
  ctx.node('Transpose', [viewed], [blocked], { perm: ints(perm) });
  ctx.node('Reshape', [blocked, ctx.int64s([o, i, kh, kw])], [out]);
  return out;
}

/**
 * The NCHWc convolution of NHWC x ([n, h, w, i]) with a filter already in MLAS's layout,
 * (the call's input `xName`) written as NHWC to the call's output; false (nothing written) where the channels do not
 * fit the blocks: MLAS needs whole output blocks, and whole input blocks or fewer than one.
 */
function nchwcConv(
  ctx: TranslationContext,
  xName: 'x' | 'dy',
  filterOf: (block: number) => string,
  outChannels: number,
  attributes: { pads: number[]; strides: number[]; dilations: number[]; kernel: number[] },
  fused: { bias?: string; activation?: ReturnType<typeof planActivation> } = {},
): boolean {
  const block = nchwcBlockSize();
  const x = ctx.input(xName);
  const inChannels = ctx.inputShape(xName).at(-1)!;
  if (block === 0 || outChannels % block !== 0) return false;
  if (inChannels % block !== 0 && inChannels >= block) return false;
  const input = ctx.temp();
  if (inChannels % block === 0) {
    ctx.node('ReorderInput', [x], [input], { channels_last: int(1) }, NCHWC_DOMAIN);
  } else {
    ctx.node('Transpose', [x], [input], { perm: ints(NHWC_TO_NCHW) });
  }
  const y = ctx.temp();
  ctx.node(
    'Conv',
    fused.bias != null ? [input, filterOf(block), fused.bias] : [input, filterOf(block)],
    [y],
    {
      pads: ints(attributes.pads),
      strides: ints(attributes.strides),
      dilations: ints(attributes.dilations),
      kernel_shape: ints(attributes.kernel),
    },
    NCHWC_DOMAIN,
  );
  const activation = fused.activation?.nodes('a', 'b') ?? [];
  const reordered = activation.length > 0 ? ctx.temp() : ctx.output();
  ctx.node(
    'ReorderOutput',
    [y],
    [reordered],
    { channels: int(outChannels), channels_last: int(1) },
    NCHWC_DOMAIN,
  );
  // A fused activation: one node on the NHWC output, as the native kernel's graph has it.
  for (const node of activation) {
    ctx.node(
      node.opType,
      [reordered],
      [ctx.output()],
      node.attributes as Record<string, OnnxAttribute>,
    );
  }
  return true;
}

type ConvInfo = NonNullable<ReturnType<typeof convInfo>>;
const convPads = (i: ConvInfo) => [
  i.padInfo.top,
  i.padInfo.left,
  i.padInfo.bottom,
  i.padInfo.right,
];

/**
 * Conv2D and FusedConv2D as an NCHWc Conv where they fit (FusedConv2D: a bias of the output
 * channels, which is the Conv's own bias input, and an activation of one node, prelu excepted),
 * else the native kernel's graph.
 */
const conv2D =
  (fused: boolean): Rule =>
  (ctx) => {
    const xShape = ctx.inputShape('x');
    const filterShape = ctx.inputShape('filter');
    const attrs = ctx.call.attrs as tf.NamedAttrMap;
    const info =
      ctx.inputDtype('x') === 'float32' && ctx.inputDtype('filter') === 'float32'
        ? convInfo(xShape, filterShape, attrs, false, attrs['dilations'] as [number, number])
        : null;
    const activation = fused ? planActivation(attrs, undefined) : undefined;
    const hasBias = fused && ctx.hasInput('bias');
    const fusedFits =
      !fused ||
      (activation != null &&
        !ctx.hasInput('preluActivationWeights') &&
        activation.nodes('a', 'b').length <= 1 &&
        (!hasBias ||
          (ctx.inputDtype('bias') === 'float32' &&
            ctx.inputShape('bias').join(',') === String(info?.outChannels))));
    const fits =
      info != null &&
      fusedFits &&
      ctx.outputShape().join(',') ===
        [info.batchSize, info.outHeight, info.outWidth, info.outChannels].join(',') &&
      nchwcConv(
        ctx,
        'x',
        (block) => nchwcFilter(ctx, ctx.input('filter'), filterShape, false, block),
        info.outChannels,
        {
          pads: convPads(info),
          strides: [info.strideHeight, info.strideWidth],
          dilations: [info.dilationHeight, info.dilationWidth],
          kernel: [filterShape[0]!, filterShape[1]!],
        },
        { bias: hasBias ? ctx.input('bias') : undefined, activation: activation ?? undefined },
      );
    if (!fits) splice(ctx, fused ? fusedConv2DKernel : conv2DKernel, attrs);
  };

/**
 * Conv2DBackpropInput with stride and dilation 1 as an NCHWc Conv: dx is dy convolved with the
 * filter flipped in both spatial axes, in and out channels swapped, padded by kernel - 1 -
 * the forward padding on each side. Elsewhere (strided: ResNet-20's downsampling convs) the
 * native kernel's ConvTranspose.
 */
const conv2DBackpropInput: Rule = (ctx) => {
  const filterShape = ctx.inputShape('filter');
  const attrs = ctx.call.attrs as tf.NamedAttrMap;
  const inputShape = attrs['inputShape'] as number[];
  const [kh, kw] = filterShape as [number, number];
  const info =
    ctx.inputDtype('dy') === 'float32' && ctx.inputDtype('filter') === 'float32'
      ? convInfo(inputShape, filterShape, attrs, false, attrs['dilations'] as [number, number])
      : null;
  const pads =
    info == null
      ? []
      : [kh - 1 - info.padInfo.top, kw - 1 - info.padInfo.left].concat([
          kh - 1 - info.padInfo.bottom,
          kw - 1 - info.padInfo.right,
        ]);
  const fits =
    info != null &&
    info.strideHeight === 1 &&
    info.strideWidth === 1 &&
    info.dilationHeight === 1 &&
    info.dilationWidth === 1 &&
    Math.min(...pads) >= 0 &&
    // The convolution's output is dy's size + pads - kernel + 1: the forward input's.
    info.outHeight + pads[0]! + pads[2]! - kh + 1 === inputShape[1] &&
    info.outWidth + pads[1]! + pads[3]! - kw + 1 === inputShape[2] &&
    ctx.outputShape().join(',') === inputShape.join(',') &&
    nchwcConv(
      ctx,
      'dy',
      (block) => {
        const flipped = ctx.temp();
        ctx.node(
          'Slice',
          [
            ctx.input('filter'),
            ctx.int64s([-1, -1]),
            ctx.int64s([-kh - 1, -kw - 1]), // past the first row and column
            ctx.int64s([0, 1]),
            ctx.int64s([-1, -1]),
          ],
          [flipped],
        );
        return nchwcFilter(ctx, flipped, filterShape, true, block);
      },
      inputShape[3]!,
      { pads, strides: [1, 1], dilations: [1, 1], kernel: [kh, kw] },
    );
  if (!fits) splice(ctx, conv2DBackpropInputKernel, attrs);
};

/**
 * Conv2DBackpropFilter: the native kernel's per-tap products (src/native/kernels/conv.ts), dy^T
 * times each tap's slice of x, with dy transposed once for all kh * kw products. From the
 * native graph's Transpose, ONNX Runtime's MatmulTransposeFusion makes each product a
 * FusedMatMul with transA, and MLAS then transposes dy again inside every one of them (a
 * Reshape in between does not stop the fusion). Written instead as NCHWc reorders (dy as an
 * NHWC image [1, 1, rows, out], blocked, then written back as NCHW: [out, rows]), which no
 * fusion folds, the products are plain MatMuls reading dy^T as it is. Where the output
 * channels are not whole blocks, the input channels fewer than a block, or without NCHWc
 * kernels (and with ADAHESSIAN_FILTER_GRAD=fused, for A/Bs), the native graph as it is.
 */
/**
 * The per-tap graph for one input channel (the CNN's and ResNet-20's first conv): each tap is
 * one column, so instead of kh * kw one-column products, the taps as rows of the transposed
 * patch matrix ([kh * kw, rows]: a Concat on the first axis, whole copies) and one product with
 * dy, [kh * kw, out], which is TF.js's filter layout for one input channel. No transposes.
 * (Measured slower: the patch matrix untransposed, a Concat on the last axis, with either
 * operand transposed for the product.) ADAHESSIAN_FILTER_GRAD=taps leaves it out (A/Bs).
 */
function oneChannelPatches(graph: OnnxGraph, rows: number): OnnxGraph {
  const taps = graph.nodes.filter((n) => n.opType === 'Slice').map((n) => n.outputs[0]!);
  const kept = graph.nodes.filter(
    (n) => n.opType === 'Pad' || n.opType === 'Slice' || n.outputs[0] === 'd',
  );
  if (kept.length !== taps.length + 2) return graph;
  // Each tap [n, oh, ow, 1] is a row of the transposed patch matrix: [kh * kw, rows].
  const nodes: OnnxNode[] = [
    ...kept,
    ...taps.map((t) => ({ opType: 'Reshape', inputs: [t, 'tapRow'], outputs: [`${t}row`] })),
    {
      opType: 'Concat',
      inputs: taps.map((t) => `${t}row`),
      outputs: ['patchesT'],
      attributes: { axis: int(0) },
    },
    { opType: 'MatMul', inputs: ['patchesT', 'd'], outputs: ['g'] },
    { opType: 'Reshape', inputs: ['g', 'outShape'], outputs: ['y'] },
  ];
  const used = new Set(nodes.flatMap((n) => n.inputs));
  return {
    ...graph,
    nodes,
    initializers: [
      ...(graph.initializers ?? []).filter((i) => used.has(i.name)),
      { name: 'tapRow', values: [1, rows] },
    ],
  };
}

const conv2DBackpropFilterTransposedOnce: NativeKernel = {
  ...conv2DBackpropFilterKernel,
  plan(inputs, attrs) {
    const plan = conv2DBackpropFilterKernel.plan(inputs, attrs);
    if (plan == null || process.env['ADAHESSIAN_FILTER_GRAD'] === 'fused') return plan;
    return {
      ...plan,
      key: `${plan.key}|dyReordered`,
      build: () => {
        const graph = plan.build();
        const transposed = graph.nodes.find(
          (n) => n.opType === 'Transpose' && n.inputs[0] === 'd' && n.outputs[0] === 'dt',
        );
        if (transposed == null) return graph;
        const rows = graph.initializers?.find((i) => i.name === 'dyShape')?.values;
        if (rows == null) return graph;
        const inChannels = graph.initializers?.find((i) => i.name === 'tapShape')?.values[2];
        if (inChannels === 1 && process.env['ADAHESSIAN_FILTER_GRAD'] !== 'taps')
          return oneChannelPatches(graph, rows[0]!);
        const block = nchwcBlockSize();
        // Fewer input channels than a block (the CNN's first conv, 1 channel: products of one
        // column) were slower this way (2.8 -> 3.5 ms).
        if (block === 0 || rows[1]! % block !== 0 || inChannels == null || inChannels < block)
          return graph;
        const nodes = graph.nodes.flatMap((n) =>
          n === transposed
            ? [
                { opType: 'Reshape', inputs: ['d', 'd4Shape'], outputs: ['d4'] },
                {
                  opType: 'ReorderInput',
                  domain: NCHWC_DOMAIN,
                  inputs: ['d4'],
                  outputs: ['dBlocked'],
                  attributes: { channels_last: int(1) },
                },
                {
                  opType: 'ReorderOutput',
                  domain: NCHWC_DOMAIN,
                  inputs: ['dBlocked'],
                  outputs: ['dNchw'],
                  attributes: { channels: int(rows[1]!), channels_last: int(0) },
                },
                { opType: 'Reshape', inputs: ['dNchw', 'dtShape'], outputs: ['dt'] },
              ]
            : [n],
        );
        return {
          ...graph,
          nodes,
          initializers: [
            ...(graph.initializers ?? []),
            { name: 'd4Shape', values: [1, 1, rows[0]!, rows[1]!] },
            { name: 'dtShape', values: [rows[1]!, rows[0]!] },
          ],
        };
      },
    };
  },
};

const native =
  (kernel: NativeKernel): Rule =>
  (ctx) =>
    splice(ctx, kernel, ctx.call.attrs as tf.NamedAttrMap);

/**
 * Windows that tile the input (stride = filter size, no padding: the CNN's 2x2 pools). Viewed
 * as [N * oh, fh, ow, fw * C] (a free reshape of NHWC), window position (i, j) of every window
 * is a slice of contiguous runs of C values, [N * oh, 1, ow, C]: NHWC of the pooled shape, as
 * dy is. The winner is found by TF.js's own scan over the positions in row-major order: take a
 * position when strictly greater than the best so far, starting from -Infinity (NaN and
 * -Infinity never win). Returns the winner per window as its offset from the window's first
 * element in x's flat NHWC layout (float32, (i * W + j) * C for position (i, j), -1: none; the
 * gathered transpose in max-pool-indices.ts reads it as an index; the position t where those
 * exceed float32's exact integers), or null for other geometries.
 */
function tiledWinners(ctx: TranslationContext): {
  winner: string;
  positions: (x: string) => string[];
  geometry: { fh: number; fw: number; oh: number; ow: number };
  /** The offset written for window position t (row-major). */
  offsets: number[];
} | null {
  const shape = ctx.inputShape('input');
  let info;
  try {
    info = maxPoolInfo(shape, ctx.call.attrs as tf.NamedAttrMap);
  } catch {
    return null;
  }
  const { filterHeight: fh, filterWidth: fw, outHeight: oh, outWidth: ow } = info;
  const { top, left, bottom, right } = info.padInfo;
  if (
    info.strideHeight !== fh ||
    info.strideWidth !== fw ||
    Math.max(top, left, bottom, right) !== 0 ||
    oh * fh > shape[1]! ||
    ow * fw > shape[2]!
  ) {
    return null;
  }
  const [n, h, w, c] = shape as [number, number, number, number];
  /** An NHWC tensor of the input's shape as its fh * fw window positions. */
  const positions = (x: string): string[] => {
    let covered = x;
    if (oh * fh !== h || ow * fw !== w) {
      // Trailing rows or columns no window reaches.
      covered = ctx.temp();
      ctx.node(
        'Slice',
        [x, ctx.int64s([0, 0]), ctx.int64s([oh * fh, ow * fw]), ctx.int64s([1, 2])],
        [covered],
      );
    }
    const rows = ctx.temp();
    ctx.node('Reshape', [covered, ctx.int64s([n * oh, fh, ow, fw * c])], [rows]);
    // Split, not Slice: less CPU in an A/B (docs/PERFORMANCE.md, seventh session).
    const rowNames = Array.from({ length: fh }, () => ctx.temp());
    ctx.node('Split', [rows, ctx.int64s(new Array<number>(fh).fill(1))], rowNames, {
      axis: int(1),
    });
    const out: string[] = [];
    for (const row of rowNames) {
      const columns = Array.from({ length: fw }, () => ctx.temp());
      ctx.node('Split', [row, ctx.int64s(new Array<number>(fw).fill(c))], columns, {
        axis: int(3),
      });
      out.push(...columns);
    }
    return out;
  };
  // Offsets are exact float32 integers below 2^24 (else positions t, and no gathered transpose).
  const exact = fh * w * c <= EXACT_FLOAT32_INTEGERS;
  const offsets = Array.from({ length: fh * fw }, (_, t) =>
    exact ? (Math.floor(t / fw) * w + (t % fw)) * c : t,
  );
  let best = ctx.scalar(-Infinity, 'float32');
  let winner = ctx.scalar(-1, 'float32');
  const taps = positions(ctx.input('input'));
  taps.forEach((x, t) => {
    const taken = ctx.temp();
    ctx.node('Greater', [x, best], [taken]);
    if (t < taps.length - 1) {
      const nextBest = ctx.temp();
      ctx.node('Where', [taken, x, best], [nextBest]);
      best = nextBest;
    }
    const nextWinner = ctx.temp();
    ctx.node('Where', [taken, ctx.scalar(offsets[t]!, 'float32'), winner], [nextWinner]);
    winner = nextWinner;
  });
  return { winner, positions, geometry: { fh, fw, oh, ow }, offsets };
}

/** Where the winner is at window position t (bool). */
function wonAt(
  ctx: TranslationContext,
  tiles: { winner: string; offsets: number[] },
  t: number,
): string {
  const at = ctx.temp();
  ctx.node('Equal', [tiles.winner, ctx.scalar(tiles.offsets[t]!, 'float32')], [at]);
  return at;
}

/** MaxPoolGrad on tiling windows: dy at each window's winner, zeros elsewhere. */
function tiledMaxPoolGrad(ctx: TranslationContext): boolean {
  const tiles = tiledWinners(ctx);
  if (tiles == null) return false;
  const { fh, fw, oh, ow } = tiles.geometry;
  const [n, h, w, c] = ctx.inputShape('input') as [number, number, number, number];
  const dy = ctx.inputAs('dy', [n * oh, 1, ow, c]);
  const zero = ctx.scalar(0, 'float32');
  const rows = Array.from({ length: fh }, (_, i) => {
    const parts = Array.from({ length: fw }, (_, j) => {
      const part = ctx.temp();
      ctx.node('Where', [wonAt(ctx, tiles, i * fw + j), dy, zero], [part]);
      return part;
    });
    const row = ctx.temp();
    ctx.node('Concat', parts, [row], { axis: int(3) });
    return row;
  });
  const blocks = ctx.temp();
  ctx.node('Concat', rows, [blocks], { axis: int(1) });
  if (oh * fh === h && ow * fw === w) {
    ctx.node('Reshape', [blocks, ctx.int64s([n, h, w, c])], [ctx.output()]);
  } else {
    const image = ctx.temp();
    ctx.node('Reshape', [blocks, ctx.int64s([n, oh * fh, ow * fw, c])], [image]);
    const pads = [0, 0, 0, 0, 0, h - oh * fh, w - ow * fw, 0];
    ctx.node('Pad', [image, ctx.int64s(pads)], [ctx.output()]);
  }
  return true;
}

/** MaxPoolGradTranspose on tiling windows: dxBar at each window's winner (0: none). */
function tiledMaxPoolGradTranspose(ctx: TranslationContext): boolean {
  const tiles = tiledWinners(ctx);
  if (tiles == null) return false;
  if (maxPoolGatherEnabled() && gatheredMaxPoolGradTranspose(ctx, tiles.winner, tiles.geometry))
    return true;
  let picked = ctx.scalar(0, 'float32');
  tiles.positions(ctx.input('dxBar')).forEach((x, t) => {
    const next = ctx.temp();
    ctx.node('Where', [wonAt(ctx, tiles, t), x, picked], [next]);
    picked = next;
  });
  ctx.node('Reshape', [picked, ctx.int64s(ctx.outputShape())], [ctx.output()]);
  return true;
}

/**
 * The argmax of each max-pooling window of the call's `input` (NHWC): `indices` (int64, flat
 * NCHW, [N, C, oh, ow]) and `none` (bool, the same shape: windows where nothing won).
 */
function maxPoolWinners(ctx: TranslationContext): { indices: string; none: string } {
  const { infos } = shapeInfos(ctx, ['input']);
  const plan = maxPoolKernel.plan({ x: infos['input']! }, ctx.call.attrs as tf.NamedAttrMap);
  const pool = plan?.build().nodes.find((n) => n.opType === 'MaxPool');
  if (pool == null) refuse(ctx, `a geometry the native MaxPool does not take`);
  const xt = ctx.temp();
  const real = ctx.temp();
  const candidates = ctx.temp();
  const pooled = ctx.temp();
  const indices = ctx.temp();
  const none = ctx.temp();
  const minusInfinity = ctx.scalar(-Infinity, 'float32');
  ctx.node('Transpose', [ctx.input('input')], [xt], { perm: ints(NHWC_TO_NCHW) });
  // NaN (and -Infinity) as -Infinity: never a winner unless a window has nothing else.
  ctx.node('Greater', [xt, minusInfinity], [real]);
  ctx.node('Where', [real, xt, minusInfinity], [candidates]);
  ctx.node(
    'MaxPool',
    [candidates],
    [pooled, indices],
    pool.attributes as Record<string, OnnxAttribute>,
  );
  ctx.node('Equal', [pooled, minusInfinity], [none]);
  return { indices, none };
}

/** `x` (NHWC) as one flat NCHW vector. */
function flatNchw(ctx: TranslationContext, x: string): string {
  const t = ctx.temp();
  const flat = ctx.temp();
  ctx.node('Transpose', [x], [t], { perm: ints(NHWC_TO_NCHW) });
  ctx.node('Reshape', [t, ctx.int64s([-1])], [flat]);
  return flat;
}

/** A flat NCHW vector as the NHWC `out` of shape [n, h, w, c]. */
function toNhwc(ctx: TranslationContext, flat: string, nhwc: number[], out: string): void {
  const [n, h, w, c] = nhwc as [number, number, number, number];
  const t = ctx.temp();
  ctx.node('Reshape', [flat, ctx.int64s([n, c, h, w])], [t]);
  ctx.node('Transpose', [t], [out], { perm: ints(NCHW_TO_NHWC) });
}

const maxPoolGrad =
  (tiling: boolean): Rule =>
  (ctx) => {
    if (ctx.inputDtype('dy') !== 'float32' || ctx.inputShape('input').length !== 4) {
      refuse(ctx, 'not a float32 rank-4 input');
    }
    if (tiling && tiledMaxPoolGrad(ctx)) return;
    const { indices, none } = maxPoolWinners(ctx);
    const dyt = ctx.temp();
    const masked = ctx.temp();
    const dyFlat = ctx.temp();
    const indexFlat = ctx.temp();
    const zeros = ctx.temp();
    const dxFlat = ctx.temp();
    const inputShape = ctx.inputShape('input');
    ctx.node('Transpose', [ctx.input('dy')], [dyt], { perm: ints(NHWC_TO_NCHW) });
    ctx.node('Where', [none, ctx.scalar(0, 'float32'), dyt], [masked]);
    ctx.node('Reshape', [masked, ctx.int64s([-1])], [dyFlat]);
    ctx.node('Reshape', [indices, ctx.int64s([-1])], [indexFlat]);
    const size = inputShape.reduce((a, b) => a * b, 1);
    ctx.node('Expand', [ctx.scalar(0, 'float32'), ctx.int64s([size])], [zeros]);
    ctx.node('ScatterElements', [zeros, indexFlat, dyFlat], [dxFlat], {
      axis: int(0),
      reduction: { kind: 'string', value: 'add' },
    });
    toNhwc(ctx, dxFlat, inputShape, ctx.output());
  };

const maxPoolGradTranspose =
  (tiling: boolean): Rule =>
  (ctx) => {
    if (ctx.inputDtype('dxBar') !== 'float32' || ctx.inputShape('input').length !== 4) {
      refuse(ctx, 'not a float32 rank-4 input');
    }
    if (tiling && tiledMaxPoolGradTranspose(ctx)) return;
    const { indices, none } = maxPoolWinners(ctx);
    const indexFlat = ctx.temp();
    const gathered = ctx.temp();
    const masked = ctx.temp();
    ctx.node('Reshape', [indices, ctx.int64s([-1])], [indexFlat]);
    ctx.node('GatherElements', [flatNchw(ctx, ctx.input('dxBar')), indexFlat], [gathered], {
      axis: int(0),
    });
    const out = ctx.outputShape();
    const [n, oh, ow, c] = out as [number, number, number, number];
    const shaped = ctx.temp();
    ctx.node('Reshape', [gathered, ctx.int64s([n, c, oh, ow])], [shaped]);
    ctx.node('Where', [none, ctx.scalar(0, 'float32'), shaped], [masked]);
    ctx.node('Transpose', [masked], [ctx.output()], { perm: ints(NCHW_TO_NHWC) });
  };

const avgPoolGrad: Rule = (ctx) => {
  const inputShape = ctx.inputShape('input');
  if (ctx.inputDtype('dy') !== 'float32' || inputShape.length !== 4) {
    refuse(ctx, 'not a float32 rank-4 input');
  }
  const attrs = ctx.call.attrs;
  const size = attrs['filterSize'] as number | [number, number];
  const [fh, fw] = typeof size === 'number' ? [size, size] : size;
  const channels = inputShape[3]!;
  const filterShape = [fh, fw, channels, 1];
  const filter = ctx.temp();
  const weights = new Array<number>(fh * fw * channels).fill(1 / (fh * fw));
  ctx.node('Reshape', [ctx.vector(weights, 'float32'), ctx.int64s(filterShape)], [filter]);
  // The planner reads 'dy' and 'filter'; 'input' only gives the shape.
  splice(
    ctx,
    depthwiseBackpropInputKernel,
    {
      strides: attrs['strides'],
      pad: attrs['pad'],
      dimRoundingMode: attrs['dimRoundingMode'],
      dataFormat: 'NHWC',
      dilations: 1,
      inputShape,
    } as tf.NamedAttrMap,
    { filter: { name: filter, shape: filterShape } },
  );
};

/** Registered in translate.ts's table. */
export const CONV_TRANSLATIONS: Readonly<Record<string, Rule>> = {
  Conv2D: conv2D(false),
  FusedConv2D: conv2D(true),
  DepthwiseConv2dNative: native(depthwiseConv2DKernel),
  FusedDepthwiseConv2D: native(fusedDepthwiseConv2DKernel),
  Conv2DBackpropInput: conv2DBackpropInput,
  Conv2DBackpropFilter: native(conv2DBackpropFilterTransposedOnce),
  DepthwiseConv2dNativeBackpropInput: native(depthwiseBackpropInputKernel),
  DepthwiseConv2dNativeBackpropFilter: native(depthwiseBackpropFilterKernel),
  MaxPool: native(maxPoolKernel),
  AvgPool: native(avgPoolKernel),
  MaxPoolGrad: maxPoolGrad(true),
  [MAX_POOL_GRAD_TRANSPOSE]: maxPoolGradTranspose(true),
  AvgPoolGrad: avgPoolGrad,
};

/** MaxPoolGrad and its transpose by MaxPool's argmax for every geometry (tests, benchmarks). */
export const GENERAL_MAX_POOL_GRAD: Readonly<Record<string, Rule>> = {
  MaxPoolGrad: maxPoolGrad(false),
  [MAX_POOL_GRAD_TRANSPOSE]: maxPoolGradTranspose(false),
};
