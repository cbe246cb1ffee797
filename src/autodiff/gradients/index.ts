/**
 * Registers the gradients that stock TensorFlow.js 4.22 lacks, or gets wrong, for
 * second-order use, one family per module. Each module also marks the kernels it makes
 * correct as verified (verified-kernels.ts) once finite-difference cases cover them.
 */
import { registerConvGradients } from './conv.js';
import { registerConv3dGradients } from './conv3d.js';
import { installDilatedFusedConvGradients } from './fused-conv.js';
import { registerResizeGradients } from './resize.js';
import { registerPoolGradients } from './pool.js';
import { registerActivationGradients } from './activations.js';
import { registerNnGradients } from './nn.js';
import { registerTileGradient } from './tile.js';
import { registerSumGradient } from './sum.js';
import { registerMeanGradient } from './mean.js';
import { registerBatchNormGradient } from './batch-norm.js';
import { registerLayerNormGradient } from './layer-norm.js';
import { registerGeluGradient } from './gelu.js';

export function registerSecondOrderGradients(): void {
  registerConvGradients();
  registerConv3dGradients();
  installDilatedFusedConvGradients();
  registerResizeGradients();
  registerPoolGradients();
  registerActivationGradients();
  registerNnGradients();
  registerTileGradient();
  registerSumGradient();
  registerMeanGradient();
  registerBatchNormGradient();
  registerLayerNormGradient();
  registerGeluGradient();
}
