/**
 * Second-order gradients for image resizing (tf.image.resizeNearestNeighbor and
 * resizeBilinear; tf.layers.upSampling2d). The stock gradients of ResizeNearestNeighbor and
 * ResizeBilinear run ResizeNearestNeighborGrad / ResizeBilinearGrad, which have no gradients
 * in TF.js 4.22. Each grad kernel is linear in dy (the transpose of the forward resize) and
 * reads `images` for its shape only, so its gradient is the forward resize of the incoming
 * cotangent in dy, with the same attributes, and zero in images.
 * This relies on the grad kernel being the exact transpose of the forward resize, which stock
 * TF.js's are not everywhere: src/kernels/resize-grad.ts replaces them on cpu and wasm, and
 * test/kernels/resize-grad.test.ts checks the property there.
 */
import * as tf from '@tensorflow/tfjs';
import { markSecondOrderVerified } from '../verified-kernels.js';

const RESIZE_KERNELS = [
  ['ResizeNearestNeighbor', 'ResizeNearestNeighborGrad'],
  ['ResizeBilinear', 'ResizeBilinearGrad'],
] as const;

function resizeGradGrad(forward: string, gradKernel: string): tf.GradConfig {
  return {
    kernelName: gradKernel,
    inputsToSave: [],
    // ddx has the shape of images (the grad kernel's output); attrs.size is dy's height and width.
    gradFunc: (ddx, _saved, attrs) => ({
      dy: () => tf.engine().runKernel(forward, { images: ddx as tf.Tensor }, attrs) as tf.Tensor,
      images: () => tf.zerosLike(ddx as tf.Tensor),
    }),
  };
}

let registered = false;

export function registerResizeGradients(): void {
  if (registered) return;
  for (const [forward, gradKernel] of RESIZE_KERNELS) {
    tf.registerGradient(resizeGradGrad(forward, gradKernel));
    markSecondOrderVerified(forward, gradKernel);
  }
  registered = true;
}
