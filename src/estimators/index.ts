/** Curvature estimators that work on any symmetric operator (explicit matrix or Hessian). */
export {
  type SymmetricOperator,
  CountingOperator,
  MatrixOperator,
  EstimatorInputError,
  matvec,
} from './operator.js';
export { SeededRandom } from './random.js';
export {
  lanczos,
  lanczosTopEigen,
  type LanczosDecomposition,
  type LanczosRunOptions,
  type EigenTarget,
  type TopEigenOptions,
  type TopEigenResult,
} from './lanczos.js';
export { powerIteration } from './power-iteration.js';
export {
  hutchinsonTrace,
  hutchinsonOperatorDiagonal,
  type HutchinsonTraceOptions,
  type HutchinsonTraceResult,
  type HutchinsonDiagonalOptions,
  type HutchinsonDiagonalResult,
  type TraceEstimate,
} from './hutchinson.js';
export {
  hutchPlusPlusTrace,
  type HutchPlusPlusOptions,
  type HutchPlusPlusResult,
} from './hutch-plus-plus.js';
export { stochasticLanczosQuadrature, type SlqOptions, type SpectralQuadrature } from './slq.js';
export { densityOnGrid, type DensityGridOptions, type DensityOnGrid } from './density.js';
export { tridiagonalEigen, symmetricEigen, gramSchmidt, type SymmetricEigen } from './linalg.js';
