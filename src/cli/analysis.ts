/**
 * Hessian analysis of a trained model on a few batches of data (HessianAnalyzer): top
 * eigenvalues, trace, spectral density and per-layer curvature, plus the SVG plots of
 * src/report. Shared by `adahessian analyze` and the demo.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  autoMicroBatchSize,
  HessianAnalyzer,
  type AnalysisData,
  type HessianReport,
} from '../analysis/index.js';
import { batches } from '../data/index.js';
import { densityOnGrid } from '../estimators/density.js';
import { softmaxCrossEntropy } from '../losses.js';
import { layerCurvatureSvg, PLOT_MARGIN_WIDTHS, spectralDensitySvg } from '../report/index.js';
import { writeFileAtomic } from './atomic-file.js';
import type { Split } from './datasets.js';
import { WasmHeapFullError } from '../wasm-heap.js';
import { CliRunError, CliUsageError } from './errors.js';
import { letSignalsIn } from './signals.js';
import { formatTable } from './table.js';

export interface AnalysisSettings {
  /** Examples per batch (default 128). */
  batchSize?: number;
  /** Batches of the split to average over (default 1: PyHessian's one-batch mode). */
  batches?: number;
  /** Top eigenvalues (default 3). */
  topN?: number;
  /** Lanczos product budget for the top eigenvalues (default 100). */
  eigenIters?: number;
  /** Hutchinson probes at most (default 100). */
  traceIters?: number;
  /** Lanczos steps per density run (default 80) and runs (default 1). */
  densityIters?: number;
  densityRuns?: number;
  /** Also the top eigenvalue of each layer's block (costs products per layer; default false). */
  layerEigenvalues?: boolean;
  /** Top eigenvalues by 'lanczos' (default) or 'power' iteration. */
  eigenMethod?: 'lanczos' | 'power';
  /** Residual tolerance of the top eigenpairs: ||Hv - lambda v|| <= tol |lambda| (default 1e-3). */
  eigenTol?: number;
  /**
   * Examples per micro-batch ('auto', the default: what the backend's memory holds; see
   * autoMicroBatchSize). Each batch's product is the size-weighted sum of its micro-batches'.
   */
  microBatch?: number | 'auto';
  seed?: number;
}

export interface AnalysisOutcome {
  /** HessianAnalyzer's report (plain JSON). */
  report: HessianReport;
  /** Mean loss over the analysed data. */
  loss: number;
  examples: number;
  seconds: number;
  /** The settings used; microBatch is the resolved size. */
  settings: Required<AnalysisSettings> & { microBatch: number };
  /** The density as PyHessian plots it, on a 1000-point grid (for re-plotting). */
  densityGrid?: { grid: number[]; density: number[] };
}

export const ANALYSIS_DEFAULTS: Required<AnalysisSettings> = {
  batchSize: 128,
  batches: 1,
  topN: 3,
  eigenIters: 100,
  traceIters: 100,
  densityIters: 80,
  densityRuns: 1,
  layerEigenvalues: false,
  eigenMethod: 'lanczos',
  eigenTol: 1e-3,
  microBatch: 'auto',
  seed: 0,
};

/**
 * The batches, walked again by every Hessian-vector product, with a turn of the event loop
 * before each (signals.ts: so that Ctrl-C stops an analysis at once). Each batch is visited as
 * on its own (size-weighted, one batch or many), so the numbers are the same.
 */
function yieldingBetweenBatches(data: { x: tf.Tensor; y: tf.Tensor }[]): AnalysisData {
  return {
    async *[Symbol.asyncIterator]() {
      for (const batch of data) {
        await letSignalsIn();
        yield batch;
      }
    },
  };
}

export async function analyzeModel(
  model: tf.LayersModel,
  split: Split,
  settings: AnalysisSettings = {},
): Promise<AnalysisOutcome> {
  const chosen = { ...ANALYSIS_DEFAULTS, ...definedOnly(settings) };
  const s = {
    ...chosen,
    microBatch: chosen.microBatch === 'auto' ? autoMicroBatchSize(model) : chosen.microBatch,
  };
  const examples = Math.min(split.count, s.batchSize * s.batches);
  if (examples < 1) throw new CliUsageError('The analysis needs at least one example.');
  const started = performance.now();
  const x = tf.slice(split.x, 0, examples);
  const y = tf.slice(split.y, 0, examples);
  const data = [...batches(x, y, s.batchSize)];
  tf.dispose([x, y]);
  try {
    const analyzer = new HessianAnalyzer({
      model,
      loss: softmaxCrossEntropy,
      data: yieldingBetweenBatches(data),
      seed: s.seed,
      microBatchSize: s.microBatch,
    });
    const loss = await analyzer.loss();
    // Block traces come with the full trace from the same probes, so one Hutchinson run
    // (inside perLayer) serves both.
    const report = await analyzer.analyze({
      topEigenvalues: {
        topN: s.topN,
        maxIter: s.eigenIters,
        method: s.eigenMethod,
        tol: s.eigenTol,
      },
      trace: false,
      density: { iterations: s.densityIters, runs: s.densityRuns },
      perLayer: {
        trace: { maxIter: s.traceIters },
        topEigenvalue: s.layerEigenvalues ? { maxIter: 30 } : false,
      },
    });
    if (report.perLayer) {
      report.trace = {
        trace: report.perLayer.trace,
        stdError: report.perLayer.traceStdError,
        products: report.perLayer.products,
        method: 'hutchinson',
      };
    }
    const outcome: AnalysisOutcome = {
      report,
      loss,
      examples,
      seconds: (performance.now() - started) / 1000,
      settings: s,
    };
    if (report.density) {
      const curve = densityOnGrid(report.density, { bins: 1000, margin: PLOT_MARGIN_WIDTHS });
      outcome.densityGrid = { grid: curve.grid, density: curve.density };
    }
    return outcome;
  } catch (error) {
    if (isOutOfMemory(error)) {
      throw outOfMemoryError(error as Error, {
        backend: tf.getBackend(),
        batchSize: Math.min(s.batchSize, examples),
        microBatch: s.microBatch,
      });
    }
    throw error;
  } finally {
    tf.dispose(data.flatMap((b) => [b.x, b.y]));
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export interface WrittenAnalysis {
  files: { json: string; densityPlot?: string; layerPlot?: string };
  /** The plots themselves (e.g. to inline into an HTML report). */
  svgs: { density?: string; layers?: string };
}

/** Writes analysis.json and the plots into `dir`. */
export function writeAnalysis(
  dir: string,
  outcome: AnalysisOutcome,
  extra: Record<string, unknown> = {},
  title = 'Hessian',
): WrittenAnalysis {
  const written: WrittenAnalysis = { files: { json: join(dir, 'analysis.json') }, svgs: {} };
  const { report } = outcome;
  if (report.density) {
    written.svgs.density = spectralDensitySvg(report.density, {
      title: `${title}: eigenvalue density`,
      markers: report.topEigenvalues?.eigenvalues,
    });
    written.files.densityPlot = join(dir, 'spectral-density.svg');
    writeFileAtomic(written.files.densityPlot, written.svgs.density);
  }
  if (report.perLayer) {
    written.svgs.layers = layerCurvatureSvg(report.perLayer, {
      title: `${title}: trace per layer`,
    });
    written.files.layerPlot = join(dir, 'layer-curvature.svg');
    writeFileAtomic(written.files.layerPlot, written.svgs.layers);
  }
  writeFileAtomic(written.files.json, JSON.stringify({ ...extra, ...outcome }, null, 2));
  return written;
}

export function analysisSummary(outcome: AnalysisOutcome): string {
  const { report } = outcome;
  const micro = outcome.settings.microBatch;
  const lines = [
    `${report.parameters} parameters, ${outcome.examples} examples` +
      (micro < Math.min(outcome.examples, outcome.settings.batchSize)
        ? ` (micro-batches of at most ${micro})`
        : '') +
      `, loss ${outcome.loss.toFixed(4)}`,
  ];
  if (report.topEigenvalues) {
    const { eigenvalues, residuals, tol, method, products } = report.topEigenvalues;
    const unmet = residuals.filter((r) => !(r <= tol)).length;
    lines.push(
      `top eigenvalues: ${eigenvalues.map((e) => e.toPrecision(5)).join(', ')} ` +
        `(${method}, ${products} products; relative residuals ||Hv - lv||/|l| ` +
        `${residuals.map((r) => r.toExponential(1)).join(', ')}: ` +
        (unmet === 0
          ? `all within tol ${tol}`
          : `${unmet} above tol ${tol}, not converged: raise --eigen-iters`) +
        ')',
    );
  }
  if (report.trace) {
    lines.push(
      `trace: ${report.trace.trace.toPrecision(5)} +- ${report.trace.stdError.toPrecision(2)}`,
    );
  }
  if (report.density) {
    const nodes = report.density.nodes.flat();
    lines.push(
      `spectrum (density nodes): ${Math.min(...nodes).toPrecision(4)} .. ${Math.max(...nodes).toPrecision(4)}`,
    );
  }
  if (report.perLayer) {
    lines.push(
      formatTable(
        ['layer', 'params', 'trace', 'trace s.e.', 'top eigenvalue'],
        report.perLayer.blocks.map((b) => [
          b.name,
          b.size,
          b.trace,
          b.traceStdError,
          b.topEigenvalue,
        ]),
        { digits: [undefined, 0, 4, 4, 4] },
      ),
    );
  }
  lines.push(`${report.products} Hessian-vector products in ${outcome.seconds.toFixed(1)} s`);
  return lines.join('\n');
}

/**
 * The wasm heap's end (4 GB) shows as "memory access out of bounds" or an abort, a typed
 * array too large for the JS heap as a RangeError: the run cannot go on, but the user can
 * lower the batch or micro-batch.
 */
export function isOutOfMemory(error: unknown): boolean {
  if (error instanceof WasmHeapFullError) return true; // the guard of src/wasm-heap.ts
  if (!(error instanceof Error)) return false;
  const message = error.message ?? '';
  if (error instanceof WebAssembly.RuntimeError) {
    return /memory access out of bounds|Aborted\(|out of memory|OOM|Cannot enlarge memory/i.test(
      message,
    );
  }
  return (
    error instanceof RangeError &&
    /Array buffer allocation failed|Invalid typed array length|Invalid array length/.test(message)
  );
}

/** One line for the user when the analysis ran out of memory (see isOutOfMemory). */
export function outOfMemoryError(
  error: Error,
  where: { backend: string; batchSize: number; microBatch: number },
): CliRunError {
  const micro = Math.min(where.microBatch, where.batchSize);
  const wrapped = new CliRunError(
    `the analysis ran out of memory on ${where.backend} (${error.message.split('\n')[0]}) at batch size ${where.batchSize} with micro-batches of ${micro} examples; lower --micro-batch (e.g. ${Math.max(1, Math.floor(micro / 2))}) or --batch-size (--debug shows the stack).`,
  );
  wrapped.cause = error; // what --debug shows
  return wrapped;
}
