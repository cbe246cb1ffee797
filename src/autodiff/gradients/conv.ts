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
 * Stock TF.js 4.22 also refuses the first-order gradient of a dilated conv2d or depthwise
 * conv; we give them one (the dilated conv is a plain conv with a zero-stuffed filter) and
 * leave every undilated conv on the stock gradient, so first-order results are unchanged.
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
 * Zero-stuffs axis `axis` (0 or 1) of a rank-3 tensor: n entries -> (n-1)d+1, each entry
 * followed by d-1 zeros. Taped reshape/pad/slice of rank <= 4 only: webgl packs and pads
 * only low ranks (a rank-5 pad's shader fails to compile there).
 */
export function stuffAxis(t: tf.Tensor3D, axis: 0 | 1, d: number): tf.Tensor3D {
  if (d === 1) return t;
  const [a, b, c] = t.shape;
  const n = axis === 0 ? a : b;
  const padded =
    axis === 0
      ? tf.pad(tf.reshape(t, [a, 1, b, c]), [
          [0, 0],
          [0, d - 1],
          [0, 0],
          [0, 0],
        ])
      : tf.pad(tf.reshape(t, [a, b, 1, c]), [
          [0, 0],
          [0, 0],
          [0, d - 1],
          [0, 0],
        ]);
  const big = (n - 1) * d + 1;
  return axis === 0
    ? tf.slice(tf.reshape<tf.Rank.R3>(padded, [n * d, b, c]), [0, 0, 0], [big, b, c])
    : tf.slice(tf.reshape<tf.Rank.R3>(padded, [a, n * d, c]), [0, 0, 0], [a, big, c]);
}

/** The inverse (and transpose) of stuffAxis: keeps every d-th entry of axis `axis`. */
export function unstuffAxis(t: tf.Tensor3D, axis: 0 | 1, d: number): tf.Tensor3D {
  if (d === 1) return t;
  const [a, b, c] = t.shape;
  const big = axis === 0 ? a : b;
  const n = (big - 1) / d + 1;
  if (axis === 0) {
    const whole = tf.reshape(
      tf.pad(t, [
        [0, d - 1],
        [0, 0],
        [0, 0],
      ]),
      [n, d, b, c],
    );
    return tf.reshape(tf.slice(whole, [0, 0, 0, 0], [n, 1, b, c]), [n, b, c]);
  }
  const whole = tf.reshape(
    tf.pad(t, [
      [0, 0],
      [0, d - 1],
      [0, 0],
    ]),
    [a, n, d, c],
  );
  return tf.reshape(tf.slice(whole, [0, 0, 0, 0], [a, n, 1, c]), [a, n, c]);
}

/** [kh, kw, in, out] -> [(kh-1)dh+1, (kw-1)dw+1, in, out] with zeros between the taps. */
export function dilateFilter(filter: tf.Tensor4D, dh: number, dw: number): tf.Tensor4D {
  const [kh, kw, cin, cout] = filter.shape;
  const rows = stuffAxis(tf.reshape(filter, [kh, kw, cin * cout]), 0, dh);
  const both = stuffAxis(rows, 1, dw);
  return tf.reshape(both, [both.shape[0], both.shape[1], cin, cout]);
}

/** The inverse (and transpose) of dilateFilter: keeps the taps, drops the zeros between them. */
export function undilateFilter(big: tf.Tensor4D, dh: number, dw: number): tf.Tensor4D {
  const [bh, bw, cin, cout] = big.shape;
  const rows = unstuffAxis(tf.reshape(big, [bh, bw, cin * cout]), 0, dh);
  const both = unstuffAxis(rows, 1, dw);
  return tf.reshape(both, [both.shape[0], both.shape[1], cin, cout]);
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

/**
 * DepthwiseConv2dNative's gradient, extended to dilations > 1 (stock TF.js asserts dilation 1
 * there). As for conv2d, through the zero-stuffed filter and the undilated backprop kernels:
 * webgl's depthwise backprop kernels get dilations > 1 wrong. Undilated depthwise convs keep
 * the stock gradient function, bit for bit.
 */
function depthwiseConv2dGrad(stock: tf.GradConfig): tf.GradConfig {
  return {
    kernelName: 'DepthwiseConv2dNative',
    inputsToSave: ['x', 'filter'],
    gradFunc: (dy, saved, attrs) => {
      const a = convAttrs(attrs);
      const [dh, dw] = pair(a.dilations);
      if (dh === 1 && dw === 1) return stock.gradFunc(dy, saved, attrs);
      const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
      const plain = depthwiseAttrs({ ...a, dilations: 1 });
      return {
        x: () =>
          runKernel(
            'DepthwiseConv2dNativeBackpropInput',
            { dy: dy as tf.Tensor, filter: dilateFilter(filter, dh, dw) },
            { ...plain, inputShape: x.shape },
          ),
        filter: () => {
          const [kh, kw, cin, multiplier] = filter.shape;
          const bigShape = [(kh - 1) * dh + 1, (kw - 1) * dw + 1, cin, multiplier];
          const g = runKernel(
            'DepthwiseConv2dNativeBackpropFilter',
            { x, dy: dy as tf.Tensor },
            { ...plain, filterShape: bigShape },
          );
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
  const stockDepthwise = tf.getGradient('DepthwiseConv2dNative');
  if (stockDepthwise == null) throw new Error('TF.js has no gradient for DepthwiseConv2dNative.');
  tf.registerGradient(depthwiseConv2dGrad(stockDepthwise));
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
    'fusedDepthwiseConv2d__op',
  );
  registered = true;
}
