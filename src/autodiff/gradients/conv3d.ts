/**
 * Second-order gradients for conv3d, as gradients/conv.ts does for conv2d: Conv3D's stock
 * gradient runs the backprop kernels Conv3DBackpropInputV2 and Conv3DBackpropFilterV2,
 * which have no gradients in TF.js 4.22. Each is bilinear, so its gradients are the forward
 * conv3d and the other backprop kernel again, all taped:
 *
 *   dx = BPI(dy, W):   d/ddy = conv3d(ddx, W)   d/dW = BPF(ddx, dy)
 *   dW = BPF(x, dy):   d/dx = BPI(dy, ddW)      d/ddy = conv3d(x, ddW)
 *
 * Conv3D itself keeps the stock gradient (first-order results unchanged), which refuses
 * dilations > 1; so do we.
 */
import * as tf from '@tensorflow/tfjs';
import { markSecondOrderVerified } from '../verified-kernels.js';

type Triple = [number, number, number] | number;
type Tensor5D = tf.Tensor5D;

interface Conv3DAttrs {
  strides: Triple;
  pad: 'valid' | 'same';
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
  tf.registerGradient(conv3dBackpropInputGrad);
  tf.registerGradient(conv3dBackpropFilterGrad);
  markSecondOrderVerified('Conv3D', 'Conv3DBackpropInputV2', 'Conv3DBackpropFilterV2');
  registered = true;
}
