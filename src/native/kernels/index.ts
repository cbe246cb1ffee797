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
import {
  addKernel,
  multiplyKernel,
  realDivKernel,
  reluKernel,
  stepKernel,
  subKernel,
} from './elementwise.js';
import { batchMatMulKernel, fusedMatMulKernel } from './matmul.js';
import { maxPoolGradKernel, maxPoolGradTransposeKernel } from './max-pool-grad.js';
import { avgPoolKernel, maxPoolKernel } from './pool.js';
import { maxKernel, meanKernel, sumKernel } from './reduce.js';
import { COMPARE_KERNELS } from './compare.js';
import { fusedBatchNormKernel } from './fused-batch-norm.js';
import { gatherKernel } from './gather.js';
import { softmaxKernel } from './softmax.js';
import { tileKernel } from './tile.js';
import { transposeKernel } from './transpose.js';
import { UNARY_KERNELS } from './unary.js';
import type { DirectKernel, NativeKernel } from './types.js';

export const NATIVE_KERNELS: readonly (NativeKernel | DirectKernel)[] = [
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
  addKernel,
  subKernel,
  multiplyKernel,
  realDivKernel,
  sumKernel,
  tileKernel,
  reluKernel,
  stepKernel,
  maxPoolKernel,
  avgPoolKernel,
  maxPoolGradKernel,
  maxPoolGradTransposeKernel,
  transposeKernel,
  softmaxKernel,
  ...UNARY_KERNELS,
  meanKernel,
  maxKernel,
  ...COMPARE_KERNELS,
  gatherKernel,
  fusedBatchNormKernel,
];

export type { DirectKernel, KernelBuffers, NativeKernel, NativePlan } from './types.js';
