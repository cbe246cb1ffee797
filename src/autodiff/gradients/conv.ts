/**
 * Second-order gradients for the convolution family.
 *
 * The first backward pass of a convolution runs the backprop kernels Conv2DBackpropInput,
 * Conv2DBackpropFilter and their depthwise twins. Each is bilinear: in (dy, filter) for the
 * input gradient, in (x, dy) for the filter gradient. For a bilinear map B(a, b) and an
 * incoming cotangent c, d<B(a, b), c>/da and /db are again convolutions of the other
 * argument with c, so the gradients below are built from the forward conv ops and the
 * other backprop kernel, all taped: the second-order sweep (and a third one) can
 * differentiate through them.
 *
 *   dW = BPF(x, dy):   d/dx = BPI(dy, ddW)      d/ddy = conv(x, ddW)
 *   dx = BPI(dy, W):   d/ddy = conv(ddx, W)     d/dW = BPF(ddx, dy)   (stock TF.js, correct)
 *
 * Stock TF.js 4.22 also refuses the first-order gradient of a dilated conv2d; we give it
 * one (the dilated conv is a plain conv with a zero-stuffed filter) and leave every
 * undilated conv2d on the stock gradient, so first-order results are unchanged.
 */
import * as tf from '@tensorflow/tfjs';
import { markSecondOrderVerified } from '../verified-kernels.js';

type Pad = Parameters<typeof tf.conv2d>[3];
type Pair = [number, number] | number;
type RoundingMode = 'floor' | 'round' | 'ceil' | undefined;
type Shape4D = [number, number, number, number];

interface ConvAttrs {
  strides: Pair;
  pad: Pad;
  dataFormat?: 'NHWC' | 'NCHW';
  dilations?: Pair;
  dimRoundingMode?: RoundingMode;
}

function convAttrs(attrs: tf.NamedAttrMap): ConvAttrs {
  return attrs as unknown as ConvAttrs;
}

function pair(p: Pair | undefined): [number, number] {
  if (p == null) return [1, 1];
  return typeof p === 'number' ? [p, p] : p;
}

/** Runs a kernel through the engine so that it is recorded on the tape like any op. */
function runKernel(name: string, inputs: tf.NamedTensorMap, attrs: object): tf.Tensor4D {
  return tf.engine().runKernel(name, inputs, attrs as tf.NamedAttrMap) as tf.Tensor4D;
}

function conv2dBackpropInput(
  inputShape: number[],
  dy: tf.Tensor,
  filter: tf.Tensor,
  a: ConvAttrs,
): tf.Tensor4D {
  return runKernel(
    'Conv2DBackpropInput',
    { dy, filter },
    {
      strides: a.strides,
      pad: a.pad,
      dataFormat: a.dataFormat ?? 'NHWC',
      dimRoundingMode: a.dimRoundingMode,
      inputShape,
    },
  );
}

function conv2dBackpropFilter(
  x: tf.Tensor,
  dy: tf.Tensor,
  filterShape: number[],
  a: ConvAttrs,
): tf.Tensor4D {
  return runKernel(
    'Conv2DBackpropFilter',
    { x, dy },
    {
      strides: a.strides,
      pad: a.pad,
      dataFormat: a.dataFormat ?? 'NHWC',
      dimRoundingMode: a.dimRoundingMode,
      filterShape,
    },
  );
}

function depthwiseAttrs(a: ConvAttrs) {
  return {
    strides: a.strides,
    pad: a.pad,
    dilations: a.dilations ?? 1,
    dimRoundingMode: a.dimRoundingMode,
  };
}

function depthwiseConv(x: tf.Tensor, filter: tf.Tensor, a: ConvAttrs): tf.Tensor4D {
  return tf.depthwiseConv2d(
    x as tf.Tensor4D,
    filter as tf.Tensor4D,
    a.strides,
    a.pad,
    'NHWC',
    a.dilations ?? 1,
    a.dimRoundingMode,
  );
}

/** Gradient of the filter gradient dW = BPF(x, dy) of a conv2d, given the cotangent ddW. */
const conv2dBackpropFilterGrad: tf.GradConfig = {
  kernelName: 'Conv2DBackpropFilter',
  inputsToSave: ['x', 'dy'],
  gradFunc: (ddw, saved, attrs) => {
    const [x, dy] = saved as [tf.Tensor4D, tf.Tensor4D];
    const a = convAttrs(attrs);
    const filter = ddw as tf.Tensor4D;
    return {
      x: () => conv2dBackpropInput(x.shape, dy, filter, a),
      dy: () =>
        tf.conv2d(x, filter, a.strides, a.pad, a.dataFormat ?? 'NHWC', 1, a.dimRoundingMode),
    };
  },
};

/** Gradient of the input gradient dx = BPI_dw(dy, W) of a depthwise conv, given ddx. */
const depthwiseBackpropInputGrad: tf.GradConfig = {
  kernelName: 'DepthwiseConv2dNativeBackpropInput',
  inputsToSave: ['dy', 'filter'],
  gradFunc: (ddx, saved, attrs) => {
    const [dy, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
    const a = convAttrs(attrs);
    return {
      dy: () => depthwiseConv(ddx as tf.Tensor, filter, a),
      filter: () =>
        runKernel(
          'DepthwiseConv2dNativeBackpropFilter',
          { x: ddx as tf.Tensor, dy },
          { ...depthwiseAttrs(a), filterShape: filter.shape },
        ),
    };
  },
};

/** Gradient of the filter gradient dW = BPF_dw(x, dy) of a depthwise conv, given ddW. */
const depthwiseBackpropFilterGrad: tf.GradConfig = {
  kernelName: 'DepthwiseConv2dNativeBackpropFilter',
  inputsToSave: ['x', 'dy'],
  gradFunc: (ddw, saved, attrs) => {
    const [x, dy] = saved as [tf.Tensor4D, tf.Tensor4D];
    const a = convAttrs(attrs);
    return {
      x: () =>
        runKernel(
          'DepthwiseConv2dNativeBackpropInput',
          { dy, filter: ddw as tf.Tensor },
          { ...depthwiseAttrs(a), inputShape: x.shape },
        ),
      dy: () => depthwiseConv(x, ddw as tf.Tensor, a),
    };
  },
};

/**
 * [kh, kw, in, out] -> [(kh-1)dh+1, (kw-1)dw+1, in, out] with zeros between the taps, from
 * taped reshape/pad/slice so that it is differentiable.
 */
export function dilateFilter(filter: tf.Tensor4D, dh: number, dw: number): tf.Tensor4D {
  const [kh, kw, cin, cout] = filter.shape;
  const c = cin * cout;
  // Give every tap a period of dh x dw entries, the tap first and zeros after it.
  const periods = tf.pad(tf.reshape(filter, [kh, 1, kw, 1, c]), [
    [0, 0],
    [0, dh - 1],
    [0, 0],
    [0, dw - 1],
    [0, 0],
  ]);
  const bh = (kh - 1) * dh + 1;
  const bw = (kw - 1) * dw + 1;
  const trimmed = tf.slice(tf.reshape(periods, [kh * dh, kw * dw, c]), [0, 0, 0], [bh, bw, c]);
  return tf.reshape(trimmed, [bh, bw, cin, cout]);
}

/** The inverse (and transpose) of dilateFilter: keeps the taps, drops the zeros between them. */
export function undilateFilter(big: tf.Tensor4D, dh: number, dw: number): tf.Tensor4D {
  const [bh, bw, cin, cout] = big.shape;
  const kh = (bh - 1) / dh + 1;
  const kw = (bw - 1) / dw + 1;
  const c = cin * cout;
  const whole = tf.pad(tf.reshape(big, [bh, bw, c]), [
    [0, dh - 1],
    [0, dw - 1],
    [0, 0],
  ]);
  const taps = tf.slice(tf.reshape(whole, [kh, dh, kw, dw, c]), [0, 0, 0, 0, 0], [kh, 1, kw, 1, c]);
  return tf.reshape(taps, [kh, kw, cin, cout]);
}

/**
 * Conv2D's gradient, extended to dilations > 1 (stock TF.js asserts dilation 1 there).
 * Undilated convs go to the stock gradient function itself, so their first-order results
 * are bit for bit what TF.js gives.
 */
function conv2dGrad(stock: tf.GradConfig): tf.GradConfig {
  return {
    kernelName: 'Conv2D',
    inputsToSave: ['x', 'filter'],
    gradFunc: (dy, saved, attrs) => {
      const a = convAttrs(attrs);
      const [dh, dw] = pair(a.dilations);
      if (dh === 1 && dw === 1) return stock.gradFunc(dy, saved, attrs);
      if ((a.dataFormat ?? 'NHWC') !== 'NHWC') {
        throw new Error(
          `Gradient of a dilated conv2d: dataFormat '${a.dataFormat}' is not supported; only 'NHWC'.`,
        );
      }
      const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
      // TF.js allows dilations > 1 only with strides 1; the dilated conv equals a plain
      // stride-1 conv with the zero-stuffed filter (same output size and padding).
      const plain: ConvAttrs = { ...a, dilations: 1 };
      return {
        x: () => conv2dBackpropInput(x.shape, dy as tf.Tensor, dilateFilter(filter, dh, dw), plain),
        filter: () => {
          const big = [(filter.shape[0] - 1) * dh + 1, (filter.shape[1] - 1) * dw + 1];
          const bigShape: Shape4D = [big[0]!, big[1]!, filter.shape[2], filter.shape[3]];
          const g = conv2dBackpropFilter(x, dy as tf.Tensor, bigShape, plain);
          return undilateFilter(g, dh, dw);
        },
      };
    },
  };
}

let registered = false;

export function registerConvGradients(): void {
  if (registered) return;
  const stockConv2d = tf.getGradient('Conv2D');
  if (stockConv2d == null) throw new Error('TF.js has no gradient for Conv2D registered.');
  tf.registerGradient(conv2dGrad(stockConv2d));
  tf.registerGradient(conv2dBackpropFilterGrad);
  tf.registerGradient(depthwiseBackpropInputGrad);
  tf.registerGradient(depthwiseBackpropFilterGrad);
  // Conv2DBackpropInput keeps its stock gradient (conv2d and BPF, both correct); the cases
  // in cases/conv.ts (conv2dTranspose, every conv's second order) verify it.
  markSecondOrderVerified(
    'Conv2D',
    'Conv2DBackpropInput',
    'Conv2DBackpropFilter',
    'DepthwiseConv2dNative',
    'DepthwiseConv2dNativeBackpropInput',
    'DepthwiseConv2dNativeBackpropFilter',
    'fusedConv2d__op',
  );
  registered = true;
}
