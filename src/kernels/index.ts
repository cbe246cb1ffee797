/**
 * Kernels we register on the cpu and wasm backends, and the resize grad kernels on webgl too
 * (the tensorflow / tfjs-node backend has all of them natively and is left alone):
 * - missing on wasm: Conv2DBackpropFilter, DepthwiseConv2dNativeBackpropFilter,
 *   DepthwiseConv2dNativeBackpropInput, UnsortedSegmentSum (every other kernel a conv /
 *   pool / embedding training or HVP path needs, AvgPoolGrad included, wasm has);
 * - pathologically slow: cpu's Conv2DBackpropFilter, DepthwiseConv2dNativeBackpropFilter
 *   (element-by-element reads), MaxPoolGrad (the same; ~30% of a CNN HVP on cpu) and
 *   UnsortedSegmentSum (one pass over x per segment);
 *   wasm's Conv2DBackpropInput (a plain C++ loop, ~8x slower than the forward conv);
 * - wrong: wasm's MaxPoolGrad (a window of only negative values sends its gradient to the
 *   window's first element), wasm's _FusedMatMul (misplaced bias with transposes or batches) and cpu's depthwise backprop kernels (ignore `dilations`;
 *   stock TF.js only calls them with dilation 1), wasm's Conv3DBackpropInputV2 (wrong for
 *   every geometry) and Conv3DBackpropFilterV2 (wrong with strides > 1), the resize grad
 *   kernels (ignore halfPixelCenters everywhere; cpu's nearest one mixes up the images of a
 *   batch, cpu's bilinear one mislabels its result's shape).
 */
import * as tf from '@tensorflow/tfjs';
import { makeConv2DBackpropFilter } from './conv2d-backprop-filter.js';
import { makeConv2DBackpropInput } from './conv2d-backprop-input.js';
import { makeConv3DBackpropFilter, makeConv3DBackpropInput } from './conv3d-backprop.js';
import { makeResizeBilinearGrad, makeResizeNearestNeighborGrad } from './resize-grad.js';
import { makeDepthwiseBackpropFilter, makeDepthwiseBackpropInput } from './depthwise-backprop.js';
import { makeUnsortedSegmentSum } from './unsorted-segment-sum.js';
import {
  MAX_POOL_GRAD_TRANSPOSE,
  makeMaxPoolGrad,
  makeMaxPoolGradTranspose,
} from './max-pool-grad.js';
import { makeFusedMatMul } from './fused-mat-mul.js';
import { RELU_GRAD, makeReluGrad } from './relu-grad.js';

export { UnsupportedKernelAttributeError } from './conv-geometry.js';
export { MAX_POOL_GRAD_TRANSPOSE } from './max-pool-grad.js';
export { RELU_GRAD } from './relu-grad.js';

interface FastKernel {
  kernelName: string;
  backendName: string;
  make: (backendName: string, stock: tf.KernelConfig | undefined) => tf.KernelFunc;
}

/** cpu's stock kernel handles NCHW; ours implement NHWC only, so hand NCHW back to it. */
function nhwcOrStock(make: (backendName: string) => tf.KernelFunc): FastKernel['make'] {
  return (backendName, stock) => {
    const fast = make(backendName);
    if (stock == null) return fast;
    return (args) =>
      (args.attrs?.['dataFormat'] ?? 'NHWC') === 'NHWC' ? fast(args) : stock.kernelFunc(args);
  };
}

export const FAST_KERNELS: readonly FastKernel[] = [
  { kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', make: makeConv2DBackpropFilter },
  { kernelName: 'Conv2DBackpropInput', backendName: 'wasm', make: makeConv2DBackpropInput },
  {
    kernelName: 'Conv2DBackpropFilter',
    backendName: 'cpu',
    make: nhwcOrStock(makeConv2DBackpropFilter),
  },
  {
    kernelName: 'DepthwiseConv2dNativeBackpropFilter',
    backendName: 'wasm',
    make: makeDepthwiseBackpropFilter,
  },
  {
    kernelName: 'DepthwiseConv2dNativeBackpropFilter',
    backendName: 'cpu',
    make: makeDepthwiseBackpropFilter,
  },
  {
    kernelName: 'DepthwiseConv2dNativeBackpropInput',
    backendName: 'wasm',
    make: makeDepthwiseBackpropInput,
  },
  {
    kernelName: 'DepthwiseConv2dNativeBackpropInput',
    backendName: 'cpu',
    make: makeDepthwiseBackpropInput,
  },
  { kernelName: 'UnsortedSegmentSum', backendName: 'wasm', make: makeUnsortedSegmentSum },
  { kernelName: 'MaxPoolGrad', backendName: 'wasm', make: makeMaxPoolGrad },
  { kernelName: 'MaxPoolGrad', backendName: 'cpu', make: makeMaxPoolGrad },
  // Ours alone (no stock kernel): MaxPoolGrad's transpose, for its second-order gradient.
  { kernelName: MAX_POOL_GRAD_TRANSPOSE, backendName: 'wasm', make: makeMaxPoolGradTranspose },
  { kernelName: MAX_POOL_GRAD_TRANSPOSE, backendName: 'cpu', make: makeMaxPoolGradTranspose },
  // Ours alone: relu's gradient in one pass (see relu-grad.ts and autodiff/gradients). Not on
  // wasm, whose own Step and Multiply beat a JS loop behind heap copies.
  { kernelName: RELU_GRAD, backendName: 'cpu', make: makeReluGrad },
  { kernelName: 'UnsortedSegmentSum', backendName: 'cpu', make: makeUnsortedSegmentSum },
  { kernelName: '_FusedMatMul', backendName: 'wasm', make: makeFusedMatMul },
  { kernelName: 'Conv3DBackpropInputV2', backendName: 'wasm', make: makeConv3DBackpropInput },
  { kernelName: 'Conv3DBackpropFilterV2', backendName: 'wasm', make: makeConv3DBackpropFilter },
  // On webgl too (its grad kernels also ignore halfPixelCenters): ours read back and upload,
  // slow, so there they run only for halfPixelCenters and the stock kernels do the rest.
  ...['cpu', 'wasm', 'webgl'].flatMap((backendName) => [
    { kernelName: 'ResizeNearestNeighborGrad', backendName, make: makeResizeNearestNeighborGrad },
    { kernelName: 'ResizeBilinearGrad', backendName, make: makeResizeBilinearGrad },
  ]),
];

const ourKernelFuncs = new Set<tf.KernelFunc>();
const stockKernels = new Map<string, tf.KernelConfig>();
const key = (kernelName: string, backendName: string) => `${backendName}/${kernelName}`;

/** Registers FAST_KERNELS, replacing (and remembering) any stock kernel. Idempotent. */
export function registerFastKernels(): void {
  for (const { kernelName, backendName, make } of FAST_KERNELS) {
    const existing = tf.getKernel(kernelName, backendName);
    if (existing != null && ourKernelFuncs.has(existing.kernelFunc)) continue;
    if (existing != null) {
      stockKernels.set(key(kernelName, backendName), existing);
      tf.unregisterKernel(kernelName, backendName);
    }
    const kernelFunc = make(backendName, existing);
    ourKernelFuncs.add(kernelFunc);
    // Keep the stock kernel's one-time setup (wasm binds its C++ function there): ours may
    // delegate to it, and the backend runs setupFunc of whatever is registered at its init.
    const setupFunc = existing?.setupFunc;
    tf.registerKernel({ kernelName, backendName, kernelFunc, ...(setupFunc ? { setupFunc } : {}) });
  }
}

/** The backend's own kernel that registerFastKernels replaced, if any (for tests and benchmarks). */
export function stockKernel(kernelName: string, backendName: string): tf.KernelConfig | undefined {
  return stockKernels.get(key(kernelName, backendName));
}

/** Whether the kernel now registered for (kernelName, backendName) is one of ours. */
export function isFastKernelRegistered(kernelName: string, backendName: string): boolean {
  const config = tf.getKernel(kernelName, backendName);
  return config != null && ourKernelFuncs.has(config.kernelFunc);
}
