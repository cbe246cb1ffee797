/**
 * The Hessian explorer: PyHessian's analysis of a trained model with the library's
 * HessianAnalyzer, over one fixed batch of training images, stage by stage so the page can
 * show progress. Plain numbers out (JSON-ready), so the page and the Node test compare them.
 */
import * as tf from '@tensorflow/tfjs';
import {
  HessianAnalyzer,
  softmaxCrossEntropy,
  type DensityResult,
  type ImageDataset,
  type Landscape1d,
  type Landscape2d,
  type PerLayerReport,
} from '../../../src/index.js';
import { firstImages } from './train.js';

export interface HessianSettings {
  /** Images in the analysis batch: the first ones of the training slice. */
  batchSize: number;
  topN: number;
  /** Lanczos iterations for the top eigenvalues (and each layer's). */
  lanczosIterations: number;
  /** Hutchinson probes for the trace and the per-layer traces. */
  traceProbes: number;
  /** Lanczos steps of the spectral density (stochastic Lanczos quadrature, one run). */
  densityIterations: number;
  /** Grid points per axis of the loss landscapes. */
  landscapeSteps: number;
  /** Largest step along each unit eigenvector. */
  landscapeRadius: number;
  seed: number;
}

export const DEFAULT_HESSIAN_SETTINGS: Readonly<HessianSettings> = {
  batchSize: 200,
  topN: 3,
  lanczosIterations: 20,
  traceProbes: 20,
  densityIterations: 30,
  landscapeSteps: 11,
  landscapeRadius: 0.5,
  seed: 1,
};

export const HESSIAN_STAGES = [
  'top eigenvalues',
  'trace',
  'eigenvalue density',
  'per-layer traces',
  'loss landscape (1-D)',
  'loss landscape (2-D)',
] as const;
export type HessianStage = (typeof HESSIAN_STAGES)[number];

export interface HessianResult {
  parameters: number;
  batchSize: number;
  loss: number;
  eigenvalues: number[];
  eigenvaluesConverged: boolean[];
  trace: number;
  traceStdError: number;
  density: DensityResult;
  perLayer: PerLayerReport;
  landscape1d: Landscape1d;
  landscape2d: Landscape2d;
  /** Hessian-vector products spent. */
  products: number;
}

export function checkHessianSettings(s: HessianSettings, availableImages: number): string[] {
  const problems: string[] = [];
  const integer = (name: string, v: number, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max) {
      problems.push(`${name} must be an integer from ${min} to ${max}, got ${v}.`);
    }
  };
  integer('analysis images', s.batchSize, 1, availableImages);
  integer('top eigenvalues', s.topN, 2, 10);
  integer('Lanczos iterations', s.lanczosIterations, 2, 200);
  integer('trace probes', s.traceProbes, 1, 500);
  integer('density iterations', s.densityIterations, 2, 200);
  integer('landscape steps', s.landscapeSteps, 3, 41);
  integer('seed', s.seed, 0, 0xffffffff);
  if (!(s.landscapeRadius > 0 && Number.isFinite(s.landscapeRadius))) {
    problems.push(`the landscape radius must be a number > 0, got ${s.landscapeRadius}.`);
  }
  return problems;
}

/**
 * Analyses `model` on the first settings.batchSize training images; onStage is called before
 * each stage (and with null at the end). The model's weights are left as they were.
 */
export async function analyzeModel(
  model: tf.LayersModel,
  train: ImageDataset,
  settings: HessianSettings,
  onStage?: (stage: HessianStage | null, index: number) => void | Promise<void>,
): Promise<HessianResult> {
  const problems = checkHessianSettings(settings, train.count);
  if (problems.length > 0) throw new RangeError(problems[0]);
  const batch = firstImages(train, settings.batchSize);
  let eigenvectors: tf.Tensor[][] = [];
  try {
    const analyzer = new HessianAnalyzer({
      model,
      loss: softmaxCrossEntropy,
      data: batch,
      seed: settings.seed,
    });
    const lanczos = { maxIter: settings.lanczosIterations, tol: 1e-4 };
    const stage = async (i: number) => onStage?.(HESSIAN_STAGES[i]!, i);
    const loss = await analyzer.loss();
    await stage(0);
    const top = await analyzer.topEigenvalues({ topN: settings.topN, ...lanczos });
    eigenvectors = top.eigenvectors;
    await stage(1);
    const trace = await analyzer.trace({ maxIter: settings.traceProbes, tol: 0 });
    await stage(2);
    const density = await analyzer.density({ iterations: settings.densityIterations, runs: 1 });
    await stage(3);
    const perLayer = await analyzer.perLayer({
      trace: { maxIter: settings.traceProbes, tol: 0 },
      topEigenvalue: lanczos,
    });
    const landscape = { steps: settings.landscapeSteps, radius: settings.landscapeRadius };
    await stage(4);
    const landscape1d = await analyzer.lossLandscape1d({
      ...landscape,
      direction: eigenvectors[0],
    });
    await stage(5);
    const landscape2d = await analyzer.lossLandscape2d({
      ...landscape,
      directions: [eigenvectors[0]!, eigenvectors[1]!],
    });
    await onStage?.(null, HESSIAN_STAGES.length);
    return {
      parameters: analyzer.size,
      batchSize: settings.batchSize,
      loss,
      eigenvalues: top.eigenvalues,
      eigenvaluesConverged: top.converged,
      trace: trace.trace,
      traceStdError: trace.stdError,
      density,
      perLayer,
      landscape1d,
      landscape2d,
      products: top.products + trace.products + density.products + perLayer.products,
    };
  } finally {
    tf.dispose([batch.x, batch.y, ...eigenvectors.flat()]);
  }
}
