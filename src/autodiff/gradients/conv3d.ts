/**
 * Second-order gradients for conv3d, as gradients/conv.ts does for conv2d: Conv3D's stock
 * gradient runs the backprop kernels Conv3DBackpropInputV2 and Conv3DBackpropFilterV2,
 * which have no gradients in TF.js 4.22. Each is bilinear, so its gradients are the forward
 * conv3d and the other backprop kernel again, all taped:
 *
 *   dx = BPI(dy, W):   d/ddy = conv3d(ddx, W)   d/dW = BPF(ddx, dy)
 *   dW = BPF(x, dy):   d/dx = BPI(dy, ddW)      d/ddy = conv3d(x, ddW)
 *
 * Conv3D keeps the stock gradient (first-order results unchanged) except with dilations > 1,
 * which stock refuses: as for conv2d, the dilated conv3d is a plain one with a zero-stuffed
 * filter (built from rank <= 4 ops, see gradients/conv.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { markSecondOrderVerified } from '../verified-kernels.js';
import { stuffAxis, unstuffAxis } from './conv.js';

type Triple = [number, number, number] | number;
type Tensor5D = tf.Tensor5D;

interface Conv3DAttrs {
  strides: Triple;
  pad: 'valid' | 'same';
  dilations?: Triple;
}

function triple(t: Triple | undefined): [number, number, number] {
  if (t == null) return [1, 1, 1];
  return typeof t === 'number' ? [t, t, t] : t;
}

/** [kd, kh, kw, in, out] -> [(kd-1)dd+1, (kh-1)dh+1, (kw-1)dw+1, in, out], zeros between taps. */
function dilateFilter3d(filter: Tensor5D, [dd, dh, dw]: [number, number, number]): Tensor5D {
  const [kd, kh, kw, cin, cout] = filter.shape;
  const c = cin * cout;
  const depth = stuffAxis(tf.reshape(filter, [kd, kh, kw * c]), 0, dd);
  const rows = stuffAxis(depth, 1, dh);
  const [bd, bh] = [rows.shape[0], rows.shape[1]];
  const cols = stuffAxis(tf.reshape(rows, [bd * bh, kw, c]), 1, dw);
  return tf.reshape(cols, [bd, bh, cols.shape[1], cin, cout]);
}

/** The inverse (and transpose) of dilateFilter3d. */
function undilateFilter3d(big: Tensor5D, [dd, dh, dw]: [number, number, number]): Tensor5D {
  const [bd, bh, bw, cin, cout] = big.shape;
  const c = cin * cout;
  const cols = unstuffAxis(tf.reshape(big, [bd * bh, bw, c]), 1, dw);
  const kw = cols.shape[1];
  const rows = unstuffAxis(tf.reshape(cols, [bd, bh, kw * c]), 1, dh);
  const depth = unstuffAxis(rows, 0, dd);
  return tf.reshape(depth, [depth.shape[0], depth.shape[1], kw, cin, cout]);
}

/** Conv3D's gradient, extended to dilations > 1; undilated convs get the stock one itself. */
function conv3dGrad(stock: tf.GradConfig): tf.GradConfig {
  return {
    kernelName: 'Conv3D',
    inputsToSave: ['x', 'filter'],
    gradFunc: (dy, saved, attrs) => {
      const a = conv3dAttrs(attrs);
      const d = triple(a.dilations);
      if (d.every((v) => v === 1)) return stock.gradFunc(dy, saved, attrs);
      const [x, filter] = saved as [Tensor5D, Tensor5D];
      // TF.js allows dilations > 1 only with strides 1, so the plain conv has the same geometry.
      const plain = { strides: a.strides, pad: a.pad };
      return {
        x: () =>
          runKernel(
            'Conv3DBackpropInputV2',
            { dy: dy as tf.Tensor, filter: dilateFilter3d(filter, d) },
            { ...plain, inputShape: x.shape },
          ),
        filter: () => {
          const bigShape = filter.shape.map((k, i) => (i < 3 ? (k - 1) * d[i]! + 1 : k));
          const g = runKernel(
            'Conv3DBackpropFilterV2',
            { x, dy: dy as tf.Tensor },
            { ...plain, filterShape: bigShape },
          );
          return undilateFilter3d(g, d);
        },
      };
    },
  };
}

function conv3dAttrs(attrs: tf.NamedAttrMap): Conv3DAttrs {
  return attrs as unknown as Conv3DAttrs;
}

function runKernel(name: string, inputs: tf.NamedTensorMap, attrs: object): Tensor5D {
  return tf.engine().runKernel(name, inputs, attrs as tf.NamedAttrMap) as Tensor5D;
}

function conv3d(x: tf.Tensor, filter: tf.Tensor, a: Conv3DAttrs): Tensor5D {
  return tf.conv3d(x as Tensor5D, filter as Tensor5D, a.strides, a.pad);
}

/** Gradient of dx = BPI(dy, W), given the cotangent ddx. */
const conv3dBackpropInputGrad: tf.GradConfig = {
  kernelName: 'Conv3DBackpropInputV2',
  inputsToSave: ['dy', 'filter'],
  gradFunc: (ddx, saved, attrs) => {
    const [dy, filter] = saved as [Tensor5D, Tensor5D];
    const a = conv3dAttrs(attrs);
    return {
      dy: () => conv3d(ddx as tf.Tensor, filter, a),
      filter: () =>
        runKernel(
          'Conv3DBackpropFilterV2',
          { x: ddx as tf.Tensor, dy },
          { strides: a.strides, pad: a.pad, filterShape: filter.shape },
        ),
    };
  },
};

/** Gradient of dW = BPF(x, dy), given the cotangent ddW. */
const conv3dBackpropFilterGrad: tf.GradConfig = {
  kernelName: 'Conv3DBackpropFilterV2',
  inputsToSave: ['x', 'dy'],
  gradFunc: (ddw, saved, attrs) => {
    const [x, dy] = saved as [Tensor5D, Tensor5D];
    const a = conv3dAttrs(attrs);
    return {
      x: () =>
        runKernel(
          'Conv3DBackpropInputV2',
          { dy, filter: ddw as tf.Tensor },
          { strides: a.strides, pad: a.pad, inputShape: x.shape },
        ),
      dy: () => conv3d(x, ddw as tf.Tensor, a),
    };
  },
};

let registered = false;

export function registerConv3dGradients(): void {
  if (registered) return;
  const stock = tf.getGradient('Conv3D');
  if (stock == null) throw new Error('TF.js has no gradient for Conv3D registered.');
  tf.registerGradient(conv3dGrad(stock));
  tf.registerGradient(conv3dBackpropInputGrad);
  tf.registerGradient(conv3dBackpropFilterGrad);
  markSecondOrderVerified('Conv3D', 'Conv3DBackpropInputV2', 'Conv3DBackpropFilterV2');
  registered = true;
}
