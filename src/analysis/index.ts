/** PyHessian-style Hessian analysis for TensorFlow.js models and loss functions. */
export {
  HessianAnalyzer,
  type HessianAnalyzerOptions,
  type LossFunctionSource,
  type ModelSource,
  type TopEigenvaluesOptions,
  type TopEigenvalues,
  type TraceOptions,
  type TraceResult,
  type DensityOptions,
  type DensityResult,
  type DiagonalResult,
  type VariableInfo,
  type AnalyzeOptions,
  type HessianReport,
} from './hessian-analyzer.js';
export {
  HessianOperator,
  type HessianOperatorOptions,
  type LabelLoss,
  type LossWalker,
  type WeightedLoss,
  type ModelLossOptions,
} from './hessian-operator.js';
export { type AnalysisBatch, type AnalysisData } from './data-source.js';
export { autoMicroBatchSize, outputFloatsPerExample } from './micro-batch.js';
export { AnalysisInputError } from './errors.js';
export {
  type LandscapeOptions,
  type Landscape1d,
  type Landscape2d,
  lossLandscape1d,
  lossLandscape2d,
} from './landscape.js';
export {
  type BlockCurvature,
  type PerLayerReport,
  type PerLayerOptions,
  type VariableGroup,
} from './per-layer.js';
