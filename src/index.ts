/**
 * adahessian: second-order optimization and Hessian analysis for TensorFlow.js.
 * Importing this module installs the second-order fixes (see autodiff/install.ts).
 */
import { installSecondOrderSupport } from './autodiff/install.js';

installSecondOrderSupport();

export { installSecondOrderSupport, VERIFIED_TFJS_VERSIONS } from './autodiff/install.js';
export {
  gradAndHvp,
  gradAndHvpMany,
  HvpInputError,
  SECOND_ORDER_VERIFIED_BACKENDS,
  UnverifiedBackendError,
  allowUnverifiedBackend,
  type GradAndHvp,
  type GradAndHvpMany,
  type HvpOptions,
} from './autodiff/hvp.js';
export {
  UnsupportedSecondOrderError,
  isSecondOrderVerified,
  secondOrderVerifiedKernels,
} from './autodiff/verified-kernels.js';
export {
  checkSecondOrder,
  DEFAULT_FD_TOLERANCE,
  type CheckSecondOrderOptions,
  type SecondOrderCheckResult,
} from './autodiff/check.js';
export {
  compareHvpWithFiniteDifferences,
  randomUnitVector,
  type FiniteDifferenceComparison,
} from './autodiff/finite-difference.js';
export type { SecondOrderCase, SecondOrderProblem } from './autodiff/cases/index.js';
export {
  useBackend,
  availableBackends,
  BACKENDS,
  type BackendName,
  type KnownBackendName,
} from './backends.js';
export { WasmHeapFullError } from './wasm-heap.js';
export * from './models/index.js';
export * from './data/index.js';
export * from './optimizers/index.js';
export * from './losses.js';
export * from './analysis/index.js';
export * from './estimators/index.js';
export * from './report/index.js';
