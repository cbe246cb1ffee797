/**
 * Everything that makes second-order autodiff correct on TensorFlow.js, installed once on
 * import: the engine's tape-order repair and the gradients that stock 4.22 lacks or gets
 * wrong. Idempotent; first-order results are unchanged.
 */
import * as tf from '@tensorflow/tfjs';
import { installTapeOrderRepair } from './tape-order.js';
import { registerSecondOrderGradients } from './gradients/index.js';
import { registerFastKernels } from '../kernels/index.js';
import { installShapeOnlySaves } from './shape-only-saves.js';

/** The TensorFlow.js versions whose private engine and gradients we have verified. */
export const VERIFIED_TFJS_VERSIONS = ['4.22.0'];

let installed = false;

/** Throws unless `version` (of @tensorflow/tfjs-core) is one we verified. */
export function assertVerifiedTfjsVersion(version: string): void {
  if (!VERIFIED_TFJS_VERSIONS.includes(version)) {
    throw new Error(
      `adahessian was verified against @tensorflow/tfjs-core ${VERIFIED_TFJS_VERSIONS.join(', ')}, ` +
        `but ${version} is loaded. Its second-order fixes patch private engine internals, so it ` +
        'refuses to run rather than risk wrong Hessians. Install @tensorflow/tfjs@4.22.0.',
    );
  }
}

export function installSecondOrderSupport(): void {
  if (installed) return;
  assertVerifiedTfjsVersion(tf.version_core);
  installTapeOrderRepair();
  registerSecondOrderGradients();
  registerFastKernels();
  // Last: it checks the gradients registered above (memory only; results unchanged).
  installShapeOnlySaves();
  installed = true;
}
