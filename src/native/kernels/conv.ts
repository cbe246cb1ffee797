/**
 * The 2-D convolution kernels (forward, fused, depthwise and both gradients) as ONNX graphs.
 * TF.js is NHWC with [kh, kw, in, out] filters, ONNX Conv is NCHW with [out, in, kh, kw]:
 * each graph transposes on the way in and out, and ONNX Runtime's optimizer turns the
 * Transpose + Conv pairs into its blocked NCHWc layout, where MLAS is fastest.
 *
 * The filter gradient has no ONNX operator. It is itself a convolution: with the roles of
 * batch and channels swapped, x (as [in, batch, h, w]) convolved with dy (as
 * [out, batch, oh, ow], dilated by the forward stride) gives [in, out, kh, kw].
 */
import * as tf from '@tensorflow/tfjs';
import type { OnnxGraph, OnnxInt64Initializer, OnnxNode } from '../onnx-model.js';
import { planActivation } from './activation.js';
import { allFloat32, int, ints, type NativeKernel, type NativePlan } from './types.js';

type Conv2DInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;
type Shape4D = [number, number, number, number];

const NHWC_TO_NCHW = [0, 3, 1, 2];
const NCHW_TO_NHWC = [0, 2, 3, 1];
/** [kh, kw, in, out] -> [out, in, kh, kw] (Conv) or [in, out, kh, kw] viewed by ConvTranspose. */
const HWIO_TO_OIHW = [3, 2, 0, 1];

export function convInfo(
  xShape: number[],
  filterShape: number[],
  attrs: tf.NamedAttrMap,
  depthwise: boolean,
  dilations: number | [number, number] | null = 1,
): Conv2DInfo | null {
  const dataFormat = (attrs['dataFormat'] as string | undefined) ?? 'NHWC';
  if (dataFormat !== 'NHWC' || xShape.length !== 4 || filterShape.length !== 4) return null;
  try {
    const info = tf.backend_util.computeConv2DInfo(
      xShape as Shape4D,
      filterShape as Shape4D,
      attrs['strides'] as number | [number, number],
      // null as TF.js's kernels read it: 1 (tf.layers' depthwise convs record dilations: null).
      dilations ?? 1,
      attrs['pad'] as Parameters<typeof tf.backend_util.computeConv2DInfo>[4],
      attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
      depthwise,
      'channelsLast',
    );
    // TF.js's kernels only use the top/left padding and its output size (which for numeric
    // padding or rounding modes can disagree with the bottom/right it reports); ONNX sizes
    // outputs with floor(), so derive the far-side padding that gives TF.js's output size.
    // Negative means trailing input the conv never reaches: no padding, if floor() agrees.
    const farPad = (inSize: number, before: number, k: number, s: number, out: number) => {
      const far = Math.max(0, (out - 1) * s + k - inSize - before);
      return Math.floor((inSize + before + far - k) / s) + 1 === out ? far : -1;
    };
    const bottom = farPad(
      info.inHeight,
      info.padInfo.top,
      info.effectiveFilterHeight,
      info.strideHeight,
      info.outHeight,
    );
    const right = farPad(
      info.inWidth,
      info.padInfo.left,
      info.effectiveFilterWidth,
      info.strideWidth,
      info.outWidth,
    );
    const { top, left } = info.padInfo;
    if (info.outHeight <= 0 || info.outWidth <= 0 || Math.min(top, left, bottom, right) < 0)
      return null;
    info.padInfo = { ...info.padInfo, bottom, right };
    return info;
  } catch {
    return null;
  }
}

const pads = (i: Conv2DInfo) => [i.padInfo.top, i.padInfo.left, i.padInfo.bottom, i.padInfo.right];
const geometryKey = (i: Conv2DInfo) =>
  `${i.strideHeight},${i.strideWidth}|${i.dilationHeight},${i.dilationWidth}|${pads(i).join(',')}`;
const shapeKey = (...shapes: number[][]) => shapes.map((s) => `[${s.join(',')}]`).join('');
const transpose = (from: string, to: string, perm: number[]): OnnxNode => ({
  opType: 'Transpose',
  inputs: [from],
  outputs: [to],
  attributes: { perm: ints(perm) },
});

/** Conv2D, FusedConv2D, DepthwiseConv2dNative and FusedDepthwiseConv2D. */
function forwardKernel(kernelName: string, depthwise: boolean, fused: boolean): NativeKernel {
  return {
    kernelName,
    plan(inputs, attrs): NativePlan | null {
      const x = inputs['x']!;
      const filter = inputs['filter']!;
      const bias = fused ? inputs['bias'] : undefined;
      if (!allFloat32(x, filter, bias)) return null;
      const info = convInfo(
        x.shape,
        filter.shape,
        attrs,
        depthwise,
        attrs['dilations'] as [number, number],
      );
      if (info == null) return null;
      const activation = fused ? planActivation(attrs, inputs['preluActivationWeights']) : null;
      if (fused && activation == null) return null;
      const [kh, kw, inChannels, mult] = filter.shape as Shape4D;
      const outChannels = info.outChannels;
      // A 1-D bias of the output channels goes into Conv's own bias input (free in MLAS).
      const convBias = bias != null && bias.shape.length === 1 && bias.shape[0] === outChannels;
      const outShape = [info.batchSize, info.outHeight, info.outWidth, outChannels];
      const graphInputs = [x, filter];
      const inputShapes = [x.shape, filter.shape];
      if (bias != null) {
        graphInputs.push(bias);
        inputShapes.push(bias.shape);
      }
      if (activation?.preluWeights != null) {
        graphInputs.push(activation.preluWeights);
        inputShapes.push(activation.preluWeights.shape);
      }
      const key = `${kernelName}|${shapeKey(...inputShapes)}|${geometryKey(info)}|${activation?.key ?? ''}`;
      const build = (): OnnxGraph => {
        const nodes: OnnxNode[] = [transpose('x', 'xt', NHWC_TO_NCHW)];
        const initializers: OnnxInt64Initializer[] = [];
        if (depthwise) {
          // [kh, kw, in, mult] -> [in, mult, kh, kw] -> [in * mult, 1, kh, kw], group = in.
          nodes.push(transpose('filter', 'fp', [2, 3, 0, 1]));
          initializers.push({ name: 'wshape', values: [inChannels * mult, 1, kh, kw] });
          nodes.push({ opType: 'Reshape', inputs: ['fp', 'wshape'], outputs: ['ft'] });
        } else {
          nodes.push(transpose('filter', 'ft', HWIO_TO_OIHW));
        }
        nodes.push({
          opType: 'Conv',
          inputs: convBias ? ['xt', 'ft', 'bias'] : ['xt', 'ft'],
          outputs: ['yt'],
          attributes: {
            pads: ints(pads(info)),
            strides: ints([info.strideHeight, info.strideWidth]),
            dilations: ints([info.dilationHeight, info.dilationWidth]),
            kernel_shape: ints([kh, kw]),
            group: int(depthwise ? inChannels : 1),
          },
        });
        nodes.push(transpose('yt', 'y0', NCHW_TO_NHWC));
        let current = 'y0';
        if (bias != null && !convBias) {
          nodes.push({ opType: 'Add', inputs: ['y0', 'bias'], outputs: ['y1'] });
          current = 'y1';
        }
        const act = activation?.nodes(current, 'y') ?? [];
        if (act.length === 0)
          nodes[nodes.length - 1] = { ...nodes[nodes.length - 1]!, outputs: ['y'] };
        nodes.push(...act);
        const names = [
          'x',
          'filter',
          ...(bias != null ? ['bias'] : []),
          ...(activation?.preluWeights ? ['alpha'] : []),
        ];
        return {
          nodes,
          initializers,
          inputs: names.map((name, i) => ({ name, shape: inputShapes[i]! })),
          outputs: [{ name: 'y', shape: outShape }],
        };
      };
      return { key, build, inputs: graphInputs, inputShapes, outShape };
    },
  };
}

/** What a deferred Conv2D output is (see the Add kernel, which folds a bias add into it). */
export interface PendingConv2D {
  kind: 'Conv2D';
  inputs: tf.NamedTensorInfoMap;
  attrs: tf.NamedAttrMap;
  outShape: number[];
}

export const conv2DKernel: NativeKernel = {
  ...forwardKernel('Conv2D', false, false),
  defer: (inputs, attrs, plan): PendingConv2D => ({
    kind: 'Conv2D',
    inputs,
    attrs,
    outShape: plan.outShape,
  }),
};
export const fusedConv2DKernel = forwardKernel('FusedConv2D', false, true);
export const depthwiseConv2DKernel = forwardKernel('DepthwiseConv2dNative', true, false);
export const fusedDepthwiseConv2DKernel = forwardKernel('FusedDepthwiseConv2D', true, true);

/** Conv2DBackpropInput and DepthwiseConv2dNativeBackpropInput: ConvTranspose. */
function backpropInputKernel(kernelName: string, depthwise: boolean): NativeKernel {
  return {
    kernelName,
    plan(inputs, attrs): NativePlan | null {
      const dy = inputs['dy']!;
      const filter = inputs['filter']!;
      const inputShape = attrs['inputShape'] as number[];
      if (!allFloat32(dy, filter)) return null;
      const info = convInfo(
        inputShape,
        filter.shape,
        attrs,
        depthwise,
        attrs['dilations'] as [number, number],
      );
      if (info == null) return null;
      const expectedDy = [info.batchSize, info.outHeight, info.outWidth, info.outChannels];
      if (!tf.util.arraysEqual(dy.shape, expectedDy)) return null;
      const [kh, kw, inChannels, mult] = filter.shape as Shape4D;
      // ConvTranspose's output is stride * (in - 1) + outputPadding + effectiveFilter - pads.
      const outputPadding = [
        info.inHeight -
          (info.strideHeight * (info.outHeight - 1) +
            info.effectiveFilterHeight -
            info.padInfo.top -
            info.padInfo.bottom),
        info.inWidth -
          (info.strideWidth * (info.outWidth - 1) +
            info.effectiveFilterWidth -
            info.padInfo.left -
            info.padInfo.right),
      ];
      if (
        outputPadding[0]! < 0 ||
        outputPadding[1]! < 0 ||
        outputPadding[0]! >= Math.max(info.strideHeight, info.dilationHeight) ||
        outputPadding[1]! >= Math.max(info.strideWidth, info.dilationWidth)
      ) {
        return null;
      }
      const outShape = [...inputShape];
      const key = `${kernelName}|${shapeKey(dy.shape, filter.shape, inputShape)}|${geometryKey(info)}`;
      const build = (): OnnxGraph => {
        const nodes: OnnxNode[] = [transpose('dy', 'dyt', NHWC_TO_NCHW)];
        const initializers: OnnxInt64Initializer[] = [];
        if (depthwise) {
          nodes.push(transpose('filter', 'fp', [2, 3, 0, 1]));
          initializers.push({ name: 'wshape', values: [inChannels * mult, 1, kh, kw] });
          nodes.push({ opType: 'Reshape', inputs: ['fp', 'wshape'], outputs: ['ft'] });
        } else {
          nodes.push(transpose('filter', 'ft', HWIO_TO_OIHW));
        }
        nodes.push({
          opType: 'ConvTranspose',
          inputs: ['dyt', 'ft'],
          outputs: ['xt'],
          attributes: {
            pads: ints(pads(info)),
            strides: ints([info.strideHeight, info.strideWidth]),
            dilations: ints([info.dilationHeight, info.dilationWidth]),
            kernel_shape: ints([kh, kw]),
            output_padding: ints(outputPadding),
            group: int(depthwise ? inChannels : 1),
          },
        });
        nodes.push(transpose('xt', 'y', NCHW_TO_NHWC));
        return {
          nodes,
          initializers,
          inputs: [
            { name: 'dy', shape: dy.shape },
            { name: 'filter', shape: filter.shape },
          ],
          outputs: [{ name: 'y', shape: outShape }],
        };
      };
      return { key, build, inputs: [dy, filter], inputShapes: [dy.shape, filter.shape], outShape };
    },
  };
}

export const conv2DBackpropInputKernel = backpropInputKernel('Conv2DBackpropInput', false);
export const depthwiseBackpropInputKernel = backpropInputKernel(
  'DepthwiseConv2dNativeBackpropInput',
  true,
);

/** Conv2DBackpropFilter and DepthwiseConv2dNativeBackpropFilter, as a batch-contracting Conv. */
function backpropFilterKernel(kernelName: string, depthwise: boolean): NativeKernel {
  return {
    kernelName,
    plan(inputs, attrs): NativePlan | null {
      const x = inputs['x']!;
      const dy = inputs['dy']!;
      const filterShape = attrs['filterShape'] as number[];
      if (!allFloat32(x, dy)) return null;
      const info = convInfo(
        x.shape,
        filterShape,
        attrs,
        depthwise,
        attrs['dilations'] as [number, number],
      );
      if (info == null) return null;
      const expectedDy = [info.batchSize, info.outHeight, info.outWidth, info.outChannels];
      if (!tf.util.arraysEqual(dy.shape, expectedDy)) return null;
      const [kh, kw, inChannels, mult] = filterShape as Shape4D;
      const n = info.batchSize;
      const { top, left } = info.padInfo;
      // Conv over positions (kh, kw): stride = forward dilation, dilation = forward stride.
      // Pad the far side just enough that the last filter tap is computed, then slice.
      const farPad = (
        k: number,
        d: number,
        s: number,
        outSize: number,
        before: number,
        inSize: number,
      ) => Math.max(0, (k - 1) * d + (outSize - 1) * s - before - (inSize - 1));
      const bottom = farPad(
        kh,
        info.dilationHeight,
        info.strideHeight,
        info.outHeight,
        top,
        info.inHeight,
      );
      const right = farPad(
        kw,
        info.dilationWidth,
        info.strideWidth,
        info.outWidth,
        left,
        info.inWidth,
      );
      const gradHeight =
        Math.floor(
          (info.inHeight + top + bottom - ((info.outHeight - 1) * info.strideHeight + 1)) /
            info.dilationHeight,
        ) + 1;
      const gradWidth =
        Math.floor(
          (info.inWidth + left + right - ((info.outWidth - 1) * info.strideWidth + 1)) /
            info.dilationWidth,
        ) + 1;
      if (gradHeight < kh || gradWidth < kw) return null;
      const outShape = [...filterShape];
      const key = `${kernelName}|${shapeKey(x.shape, dy.shape, filterShape)}|${geometryKey(info)}`;
      if (!depthwise) {
        return {
          key: `${key}|taps`,
          build: () => filterGradientByTaps(x.shape, dy.shape, filterShape, info),
          inputs: [x, dy],
          inputShapes: [x.shape, dy.shape],
          outShape,
        };
      }
      const build = (): OnnxGraph => {
        const nodes: OnnxNode[] = [];
        const initializers: OnnxInt64Initializer[] = [];
        nodes.push(transpose('x', 'xc', [3, 0, 1, 2])); // [in, n, h, w]
        nodes.push(transpose('dy', 'dyc', [3, 0, 1, 2])); // [out, n, oh, ow]
        let convInput = 'xc';
        if (depthwise) {
          // One image whose channels are (in, n); groups of n channels per input channel.
          initializers.push({
            name: 'xshape',
            values: [1, inChannels * n, info.inHeight, info.inWidth],
          });
          nodes.push({ opType: 'Reshape', inputs: ['xc', 'xshape'], outputs: ['xg'] });
          convInput = 'xg';
        }
        nodes.push({
          opType: 'Conv',
          inputs: [convInput, 'dyc'],
          outputs: ['g'],
          attributes: {
            pads: ints([top, left, bottom, right]),
            strides: ints([info.dilationHeight, info.dilationWidth]),
            dilations: ints([info.strideHeight, info.strideWidth]),
            kernel_shape: ints([info.outHeight, info.outWidth]),
            group: int(depthwise ? inChannels : 1),
          },
        });
        let current = 'g';
        if (gradHeight !== kh || gradWidth !== kw) {
          initializers.push(
            { name: 'starts', values: [0, 0] },
            { name: 'ends', values: [kh, kw] },
            { name: 'axes', values: [2, 3] },
          );
          nodes.push({ opType: 'Slice', inputs: ['g', 'starts', 'ends', 'axes'], outputs: ['gs'] });
          current = 'gs';
        }
        if (depthwise) {
          // [1, in * mult, kh, kw] -> [in, mult, kh, kw] -> [kh, kw, in, mult]
          initializers.push({ name: 'gshape', values: [inChannels, mult, kh, kw] });
          nodes.push({ opType: 'Reshape', inputs: [current, 'gshape'], outputs: ['gr'] });
          current = 'gr';
        }
        // [in, out, kh, kw] -> [kh, kw, in, out]
        nodes.push(transpose(current, 'y', [2, 3, 0, 1]));
        return {
          nodes,
          initializers,
          inputs: [
            { name: 'x', shape: x.shape },
            { name: 'dy', shape: dy.shape },
          ],
          outputs: [{ name: 'y', shape: outShape }],
        };
      };
      return { key, build, inputs: [x, dy], inputShapes: [x.shape, dy.shape], outShape };
    },
  };
}

export const conv2DBackpropFilterKernel = backpropFilterKernel('Conv2DBackpropFilter', false);
export const depthwiseBackpropFilterKernel = backpropFilterKernel(
  'DepthwiseConv2dNativeBackpropFilter',
  true,
);

/**
 * The filter gradient as one matrix product per filter tap: tap (i, j) of the gradient is
 * dy^T ([out, n * oh * ow]) times the input rows that tap sees (one shifted, strided slice of
 * the padded input, [n * oh * ow, in]), [out, in]; the kh * kw products are concatenated and
 * transposed to TF.js's [kh, kw, in, out]. Each slice is contiguous and feeds its product
 * directly (no patch matrix), and the products are long-K Gemms MLAS runs well: on the CNN's
 * [128,14,14,16] x [128,14,14,32] 3x3 gradient ~4.5 ms against ~11 ms for the
 * batch-contracting Conv and ~12.5 ms for one product of a [25088, 144] patch matrix (one
 * thread); on its first conv (1 input channel) ~1.5 ms against ~2.1 ms for the patch matrix.
 */
function filterGradientByTaps(
  xShape: number[],
  dyShape: number[],
  filterShape: number[],
  info: Conv2DInfo,
): OnnxGraph {
  const [kh, kw, inChannels, outChannels] = filterShape as Shape4D;
  const { top, left } = info.padInfo;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const { outHeight: oh, outWidth: ow, inHeight, inWidth } = info;
  // Enough far padding that every tap's slice lies inside the padded input.
  const bottom = Math.max(0, (kh - 1) * dh + (oh - 1) * sh + 1 - inHeight - top);
  const right = Math.max(0, (kw - 1) * dw + (ow - 1) * sw + 1 - inWidth - left);
  const rows = info.batchSize * oh * ow;
  const nodes: OnnxNode[] = [
    { opType: 'Pad', inputs: ['x', 'pads'], outputs: ['xp'] },
    { opType: 'Reshape', inputs: ['dy', 'dyShape'], outputs: ['d'] },
    transpose('d', 'dt', [1, 0]), // [out, rows]
  ];
  const initializers: OnnxInt64Initializer[] = [
    { name: 'pads', values: [0, top, left, 0, 0, bottom, right, 0] },
    { name: 'axes', values: [1, 2] },
    { name: 'steps', values: [sh, sw] },
    { name: 'tapShape', values: [1, rows, inChannels] },
    { name: 'dyShape', values: [rows, outChannels] },
    { name: 'outShape', values: filterShape },
  ];
  const products: string[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const start = [i * dh, j * dw];
      const tap = `tap${i}_${j}`;
      initializers.push(
        { name: `start${i}_${j}`, values: start },
        {
          name: `end${i}_${j}`,
          values: [start[0]! + (oh - 1) * sh + 1, start[1]! + (ow - 1) * sw + 1],
        },
      );
      nodes.push(
        {
          opType: 'Slice',
          inputs: ['xp', `start${i}_${j}`, `end${i}_${j}`, 'axes', 'steps'],
          outputs: [tap],
        },
        { opType: 'Reshape', inputs: [tap, 'tapShape'], outputs: [`${tap}r`] },
        { opType: 'MatMul', inputs: ['dt', `${tap}r`], outputs: [`${tap}g`] }, // [1, out, in]
      );
      products.push(`${tap}g`);
    }
  }
  nodes.push(
    { opType: 'Concat', inputs: products, outputs: ['g'], attributes: { axis: int(0) } },
    transpose('g', 'gt', [0, 2, 1]), // [kh * kw, in, out]
    { opType: 'Reshape', inputs: ['gt', 'outShape'], outputs: ['y'] },
  );
  return {
    nodes,
    initializers,
    inputs: [
      { name: 'x', shape: xShape },
      { name: 'dy', shape: dyShape },
    ],
    outputs: [{ name: 'y', shape: filterShape }],
  };
}
