/** Every kernel the native path can take over, by TF.js kernel name. */
import {
  conv2DBackpropFilterKernel,
  conv2DBackpropInputKernel,
  conv2DKernel,
  depthwiseBackpropFilterKernel,
  depthwiseBackpropInputKernel,
  depthwiseConv2DKernel,
  fusedConv2DKernel,
  fusedDepthwiseConv2DKernel,
} from './conv.js';
import { batchMatMulKernel, fusedMatMulKernel } from './matmul.js';
import type { NativeKernel } from './types.js';

export const NATIVE_KERNELS: readonly NativeKernel[] = [
  batchMatMulKernel,
  fusedMatMulKernel,
  conv2DKernel,
  fusedConv2DKernel,
  conv2DBackpropInputKernel,
  conv2DBackpropFilterKernel,
  depthwiseConv2DKernel,
  fusedDepthwiseConv2DKernel,
  depthwiseBackpropInputKernel,
  depthwiseBackpropFilterKernel,
];

export type { NativeKernel, NativePlan } from './types.js';
