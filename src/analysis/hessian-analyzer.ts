/**
 * PyHessian's analysis for TensorFlow.js in one class: top eigenvalues, trace, spectral
 * density, diagonal, per-layer curvature and loss landscapes, over a loss function and
 * variables or over a tf.layers model with one batch or a whole dataset.
 *
 * Results are plain numbers and arrays (JSON-ready) except eigenvectors and diagonals,
 * which are tensors shaped like the variables; the caller disposes those.
 */
import * as tf from '@tensorflow/tfjs';
import { hutchinsonOperatorDiagonal, hutchinsonTrace } from '../estimators/hutchinson.js';
import { hutchPlusPlusTrace } from '../estimators/hutch-plus-plus.js';
import { lanczosTopEigen, type EigenTarget } from '../estimators/lanczos.js';
import { powerIteration } from '../estimators/power-iteration.js';
import { stochasticLanczosQuadrature } from '../estimators/slq.js';
import {
  densityOnGrid,
  type DensityGridOptions,
  type DensityOnGrid,
} from '../estimators/density.js';
import { AnalysisInputError } from './errors.js';
import type { AnalysisData } from './data-source.js';
import {
  HessianOperator,
  type HessianOperatorOptions,
  type LabelLoss,
} from './hessian-operator.js';
import {
  type LandscapeOptions,
  type Landscape1d,
  type Landscape2d,
  lossLandscape1d,
  lossLandscape2d,
} from './landscape.js';
import {
  perLayerCurvature,
  type PerLayerOptions,
  type PerLayerReport,
  type VariableGroup,
} from './per-layer.js';

/**
 * Hutchinson probes sent together: they share one forward and gradient pass per batch, which
 * saved about 30 % per product on the small CNN, at the memory of 4 products.
 */
const DEFAULT_PROBES_PER_PASS = 4;

interface CommonOptions extends HessianOperatorOptions {
  /** Default seed for every random start vector and probe (default 0). */
  seed?: number;
}

export interface LossFunctionSource extends CommonOptions {
  lossFn: () => tf.Scalar;
  vars: tf.Variable[];
  /** Names for the variables in reports (default: the variables' own names). */
  names?: string[];
}

export interface ModelSource extends CommonOptions {
  model: tf.LayersModel;
  /** (labels, predictions) => scalar, e.g. softmaxCrossEntropy or meanSquaredError. */
  loss: LabelLoss;
  /** One {x, y} batch, or an array / iterable / tf.data.Dataset of batches. */
  data: AnalysisData;
  /** Run the model in training mode (batch statistics, dropout); default false (inference). */
  training?: boolean;
  /**
   * Examples per micro-batch: each batch's product is the size-weighted sum of its
   * micro-batches' products, which bounds memory. Default 'auto' in inference mode (what fits
   * the backend's memory), whole batches in training mode (where micro-batches would change
   * the batch statistics).
   */
  microBatchSize?: number | 'auto';
}

export type HessianAnalyzerOptions = LossFunctionSource | ModelSource;

export interface TopEigenvaluesOptions {
  topN?: number;
  maxIter?: number;
  tol?: number;
  /** 'lanczos' (default) or 'power' (PyHessian's power iteration). */
  method?: 'lanczos' | 'power';
  /** Which end of the spectrum; power iteration supports 'magnitude' (the default) only. */
  which?: EigenTarget;
  seed?: number;
}

export interface TopEigenvalues {
  eigenvalues: number[];
  /** One list of tensors shaped like the variables per eigenvalue (unit norm overall). */
  eigenvectors: tf.Tensor[][];
  products: number;
  /** Whether each pair met the tolerance: residuals[i] <= tol. */
  converged: boolean[];
  /** ||H v - lambda v|| / |lambda| of each pair: it bounds lambda's relative error. */
  residuals: number[];
  /** The residual tolerance asked for (default 1e-3). */
  tol: number;
  method: 'lanczos' | 'power';
}

export interface TraceOptions {
  /** Hutchinson: the most probes; Hutch++: the product budget (default 100 / 99). */
  maxIter?: number;
  /** Hutchinson: stop when the standard error is at most tol * |trace| (default 1e-3). */
  tol?: number;
  method?: 'hutchinson' | 'hutch++';
  seed?: number;
  /** Hutchinson probes per pass over the data, sharing its forward pass (default 4). */
  probesPerPass?: number;
}

export interface TraceResult {
  trace: number;
  stdError: number;
  products: number;
  method: 'hutchinson' | 'hutch++';
}

export interface DensityOptions {
  /** Lanczos steps per run (default 100). */
  iterations?: number;
  /** Independent runs (default 1). */
  runs?: number;
  seed?: number;
}

export interface DensityResult {
  nodes: number[][];
  weights: number[][];
  products: number;
}

export interface DiagonalResult {
  /** Tensors shaped like the variables. */
  diagonal: tf.Tensor[];
  products: number;
}

export interface VariableInfo {
  name: string;
  shape: number[];
  size: number;
  /** The tf.layers layer that owns it (model mode). */
  layer?: string;
}

export interface AnalyzeOptions {
  topEigenvalues?: TopEigenvaluesOptions | false;
  trace?: TraceOptions | false;
  density?: DensityOptions | false;
  perLayer?: (PerLayerOptions & { by?: 'layer' | 'variable' }) | false;
  /** Loss along the top eigenvector (1-D) and the top two (2-D); off by default. */
  landscape?: (LandscapeOptions & { dimensions?: 1 | 2 | 'both' }) | false;
}

/** Everything analyze() found, as plain JSON. */
export interface HessianReport {
  parameters: number;
  variables: (VariableInfo & { noGradient: boolean })[];
  variablesWithoutGradient: string[];
  topEigenvalues?: Omit<TopEigenvalues, 'eigenvectors'>;
  trace?: TraceResult;
  density?: DensityResult;
  perLayer?: PerLayerReport;
  landscape1d?: Landscape1d;
  landscape2d?: Landscape2d;
  /** Hessian-vector products spent in all. */
  products: number;
}

export class HessianAnalyzer {
  /** The Hessian as an operator on flat vectors (for the estimators in adahessian's estimators). */
  readonly operator: HessianOperator;
  readonly variables: VariableInfo[];
  private readonly layerGroups: VariableGroup[] | null;
  private readonly seed: number;
  private noGradient: Promise<number[]> | null = null;

  constructor(options: HessianAnalyzerOptions) {
    if (options == null || typeof options !== 'object') {
      throw new AnalysisInputError(
        'HessianAnalyzer needs { lossFn, vars } or { model, loss, data }.',
      );
    }
    this.seed = options.seed ?? 0;
    if ('model' in options && options.model !== undefined) {
      const { model, loss, data, training, microBatchSize } = options;
      this.operator = HessianOperator.fromModel(
        { model, loss, data, training, microBatchSize },
        options,
      );
      const { variables, groups } = describeModel(model, this.operator.vars);
      this.variables = variables;
      this.layerGroups = groups;
    } else if ('lossFn' in options) {
      this.operator = HessianOperator.fromLoss(options.lossFn, options.vars, options);
      const names = options.names ?? options.vars.map((v) => v.name);
      if (names.length !== options.vars.length) {
        throw new AnalysisInputError(
          `names has ${names.length} entries for ${options.vars.length} variables.`,
        );
      }
      this.variables = options.vars.map((v, i) => ({
        name: names[i]!,
        shape: v.shape.slice(),
        size: v.size,
      }));
      this.layerGroups = null;
    } else {
      throw new AnalysisInputError(
        'HessianAnalyzer needs { lossFn, vars } or { model, loss, data }.',
      );
    }
  }

  /** Number of parameters (the Hessian is size x size). */
  get size(): number {
    return this.operator.size;
  }

  /** Hessian-vector products spent so far by this analyzer (per-layer block products excluded). */
  get products(): number {
    return this.operator.products;
  }

  /** The size-weighted mean loss at the current weights. */
  loss(): Promise<number> {
    return this.operator.loss();
  }

  /** Names of the variables the loss does not depend on (they get zero curvature). */
  async variablesWithoutGradient(): Promise<string[]> {
    const indices = await this.noGradientIndices();
    return indices.map((i) => this.variables[i]!.name);
  }

  async topEigenvalues(options: TopEigenvaluesOptions = {}): Promise<TopEigenvalues> {
    const method = options.method ?? 'lanczos';
    const run = method === 'lanczos' ? lanczosTopEigen : method === 'power' ? powerIteration : null;
    if (run == null)
      throw new AnalysisInputError(`method must be 'lanczos' or 'power', got '${method}'.`);
    const result = await run(this.operator, { ...options, seed: options.seed ?? this.seed });
    const eigenvectors = result.eigenvectors.map((v) => {
      const parts = this.operator.toVariables(v);
      v.dispose();
      return parts;
    });
    return {
      eigenvalues: result.eigenvalues,
      eigenvectors,
      products: result.products,
      converged: result.converged,
      residuals: result.residuals,
      tol: result.tol,
      method,
    };
  }

  async trace(options: TraceOptions = {}): Promise<TraceResult> {
    const method = options.method ?? 'hutchinson';
    const seed = options.seed ?? this.seed;
    if (method === 'hutchinson') {
      const r = await hutchinsonTrace(this.operator, {
        maxIter: options.maxIter,
        tol: options.tol,
        seed,
        probesPerPass: options.probesPerPass ?? DEFAULT_PROBES_PER_PASS,
      });
      return { trace: r.trace, stdError: r.stdError, products: r.products, method };
    }
    if (method === 'hutch++') {
      const r = await hutchPlusPlusTrace(this.operator, { budget: options.maxIter ?? 99, seed });
      return { trace: r.trace, stdError: r.stdError, products: r.products, method };
    }
    throw new AnalysisInputError(
      `method must be 'hutchinson' or 'hutch++', got '${method as string}'.`,
    );
  }

  async density(options: DensityOptions = {}): Promise<DensityResult> {
    return stochasticLanczosQuadrature(this.operator, {
      ...options,
      seed: options.seed ?? this.seed,
    });
  }

  /** The smoothed density on a grid exactly as PyHessian plots it (see densityOnGrid). */
  densityOnGrid(density: DensityResult, options: DensityGridOptions = {}): DensityOnGrid {
    return densityOnGrid(density, options);
  }

  async diagonal(
    options: { samples?: number; seed?: number; probesPerPass?: number } = {},
  ): Promise<DiagonalResult> {
    const r = await hutchinsonOperatorDiagonal(this.operator, {
      samples: options.samples,
      seed: options.seed ?? this.seed,
      probesPerPass: options.probesPerPass ?? DEFAULT_PROBES_PER_PASS,
    });
    const diagonal = this.operator.toVariables(r.diagonal);
    r.diagonal.dispose();
    return { diagonal, products: r.products };
  }

  /**
   * Trace and top eigenvalue of each weight tensor's block of the Hessian, or of each
   * layer's block (all its weights together; the default for tf.layers models).
   */
  async perLayer(
    options: PerLayerOptions & { by?: 'layer' | 'variable' } = {},
  ): Promise<PerLayerReport> {
    const by = options.by ?? (this.layerGroups ? 'layer' : 'variable');
    let groups: VariableGroup[];
    if (by === 'layer') {
      if (this.layerGroups == null) {
        throw new AnalysisInputError(
          "by: 'layer' needs a tf.layers model; use by: 'variable' with lossFn and vars.",
        );
      }
      groups = this.layerGroups;
    } else if (by === 'variable') {
      groups = this.variables.map((v, i) => ({ name: v.name, indices: [i] }));
    } else {
      throw new AnalysisInputError(`by must be 'layer' or 'variable', got '${by as string}'.`);
    }
    const noGradient = new Set(await this.noGradientIndices());
    const seed = options.trace?.seed ?? this.seed;
    const topEigenvalue =
      options.topEigenvalue === false
        ? false
        : { ...options.topEigenvalue, seed: options.topEigenvalue?.seed ?? seed };
    return perLayerCurvature(
      this.operator,
      groups,
      by,
      this.variables.map((v) => v.name),
      noGradient,
      {
        trace: {
          ...options.trace,
          seed,
          probesPerPass: options.trace?.probesPerPass ?? DEFAULT_PROBES_PER_PASS,
        },
        topEigenvalue,
      },
    );
  }

  /** The loss along `direction` (default: the top eigenvector) through the current weights. */
  async lossLandscape1d(
    options: LandscapeOptions & { direction?: tf.Tensor[] } = {},
  ): Promise<Landscape1d> {
    const [d] = await this.directions(1, options.direction ? [options.direction] : undefined);
    try {
      return await lossLandscape1d(this.operator, d!, options);
    } finally {
      d!.dispose();
    }
  }

  /** The loss on a plane through the current weights (default: the top two eigenvectors). */
  async lossLandscape2d(
    options: LandscapeOptions & { directions?: [tf.Tensor[], tf.Tensor[]] } = {},
  ): Promise<Landscape2d> {
    const ds = await this.directions(2, options.directions);
    try {
      return await lossLandscape2d(this.operator, ds[0]!, ds[1]!, options);
    } finally {
      tf.dispose(ds);
    }
  }

  /** Runs the whole analysis and returns it as plain JSON. */
  async analyze(options: AnalyzeOptions = {}): Promise<HessianReport> {
    const noGradient = new Set(await this.noGradientIndices());
    const report: HessianReport = {
      parameters: this.size,
      variables: this.variables.map((v, i) => ({ ...v, noGradient: noGradient.has(i) })),
      variablesWithoutGradient: [...noGradient].map((i) => this.variables[i]!.name),
      products: 0,
    };
    const landscape =
      options.landscape === false || options.landscape === undefined ? null : options.landscape;
    const dims = landscape?.dimensions ?? 'both';
    let vectors: tf.Tensor[][] = [];
    try {
      if (options.topEigenvalues !== false || landscape) {
        const wanted = landscape && dims !== 1 ? 2 : 1;
        const eigenOptions = options.topEigenvalues || {};
        const top = await this.topEigenvalues({
          ...eigenOptions,
          topN: Math.max(eigenOptions.topN ?? 1, wanted),
        });
        vectors = top.eigenvectors;
        const { eigenvectors: _unused, ...rest } = top;
        if (options.topEigenvalues !== false) report.topEigenvalues = rest;
        report.products += top.products;
      }
      if (options.trace !== false) {
        report.trace = await this.trace(options.trace || {});
        report.products += report.trace.products;
      }
      if (options.density !== false) {
        report.density = await this.density(options.density || {});
        report.products += report.density.products;
      }
      if (options.perLayer !== false) {
        report.perLayer = await this.perLayer(options.perLayer || {});
        report.products += report.perLayer.products;
      }
      if (landscape) {
        if (dims === 1 || dims === 'both') {
          report.landscape1d = await this.lossLandscape1d({ ...landscape, direction: vectors[0] });
        }
        if (dims === 2 || dims === 'both') {
          report.landscape2d = await this.lossLandscape2d({
            ...landscape,
            directions: [vectors[0]!, vectors[1]!],
          });
        }
      }
    } finally {
      tf.dispose(vectors.flat());
    }
    return report;
  }

  private noGradientIndices(): Promise<number[]> {
    this.noGradient ??= this.operator.variablesWithoutGradient();
    return this.noGradient;
  }

  /** Flat unit directions: the given ones (normalised) or the top eigenvectors. */
  private async directions(count: number, given?: tf.Tensor[][]): Promise<tf.Tensor1D[]> {
    if (given !== undefined) {
      if (given.length !== count)
        throw new AnalysisInputError(`Expected ${count} direction(s), got ${given.length}.`);
      return given.map((d, k) => {
        if (!Array.isArray(d) || d.length !== this.variables.length) {
          throw new AnalysisInputError(
            `Direction ${k} must be a list of ${this.variables.length} tensors shaped like the variables.`,
          );
        }
        d.forEach((t, i) => {
          if (!tf.util.arraysEqual(t.shape, this.variables[i]!.shape)) {
            throw new AnalysisInputError(
              `Direction ${k}, tensor ${i} has shape [${t.shape.join(', ')}] but variable '${this.variables[i]!.name}' has [${this.variables[i]!.shape.join(', ')}].`,
            );
          }
        });
        return tf.tidy(() => {
          const flat = this.operator.flatten(d);
          return tf.div(flat, tf.norm(flat)) as tf.Tensor1D;
        });
      });
    }
    const top = await this.topEigenvalues({ topN: count });
    const flat = top.eigenvectors.map((parts) => this.operator.flatten(parts));
    tf.dispose(top.eigenvectors.flat());
    return flat;
  }
}

/** Names, shapes and owning layers of a model's trainable weights, and one group per layer. */
function describeModel(
  model: tf.LayersModel,
  vars: tf.Variable[],
): { variables: VariableInfo[]; groups: VariableGroup[] } {
  const layerOf = new Map<tf.Variable, string>();
  const groups: VariableGroup[] = [];
  for (const layer of model.layers) {
    const indices = layer.trainableWeights
      .map((w) => vars.indexOf((w as unknown as { read(): tf.Variable }).read()))
      .filter((i) => i >= 0);
    if (indices.length === 0) continue;
    indices.forEach((i) => layerOf.set(vars[i]!, layer.name));
    groups.push({ name: layer.name, indices });
  }
  const names = model.trainableWeights.map((w) => w.name);
  const variables = vars.map((v, i) => {
    const info: VariableInfo = { name: names[i] ?? v.name, shape: v.shape.slice(), size: v.size };
    const layer = layerOf.get(v);
    if (layer !== undefined) info.layer = layer;
    return info;
  });
  return { variables, groups };
}
