/** Optimizers: AdaHessian, its building blocks, and the baselines it is compared with. */
export { AdaHessian, adahessian } from './adahessian.js';
export {
  ADAHESSIAN_DEFAULTS,
  resolveAdaHessianConfig,
  type AdaHessianConfig,
  type ResolvedAdaHessianConfig,
} from './adahessian-config.js';
export {
  hutchinsonDiagonal,
  drawProbes,
  diagonalFromProducts,
  type HutchinsonOptions,
  type HutchinsonEstimate,
} from './hutchinson.js';
export { RademacherGenerator, type RademacherState } from './rademacher.js';
export {
  spatialAverage,
  averagingModeFor,
  validateSpatialAveraging,
  DEFAULT_SPATIAL_AVERAGING,
  type AveragingMode,
  type SpatialAveraging,
} from './spatial-average.js';
export { NonFiniteError } from './non-finite.js';
export type { LearningRate } from './learning-rate.js';
export { AdamW, adamw, ADAMW_DEFAULTS, type AdamWConfig } from './adamw.js';
export {
  optimizerByName,
  isOptimizerName,
  OPTIMIZER_NAMES,
  DEFAULT_LEARNING_RATES,
  type OptimizerName,
  type OptimizerOptions,
} from './by-name.js';
