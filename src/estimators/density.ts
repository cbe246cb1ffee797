/**
 * The smoothed spectral density exactly as PyHessian plots it (density_generate): every
 * quadrature node becomes a Gaussian of variance sigmaSquared * max(1, range), summed with
 * its weight on a grid of `bins` points from the mean smallest node - overhead to the mean
 * largest node + overhead, averaged over runs and normalised so that sum(density) * dx = 1.
 * With `margin` the grid reaches further, so that no peak is cut at an edge.
 */
import { EstimatorInputError } from './operator.js';

export interface DensityGridOptions {
  /** Grid points (default 10000). */
  bins?: number;
  /** Gaussian variance per unit of spectrum width (default 1e-5). */
  sigmaSquared?: number;
  /** Padding added on both sides of the grid (default 0.01). */
  overhead?: number;
  /**
   * Also reach this many kernel standard deviations past the outermost node of any run.
   * PyHessian's grid ends 0.01 past the mean of the runs' largest nodes, which cuts the top
   * eigenvalue's peak when the runs disagree or the kernel is wider than 0.01; plots use 4.
   * The kernels themselves are unchanged. Default: none, PyHessian's range exactly.
   */
  margin?: number;
}

export interface DensityOnGrid {
  grid: number[];
  density: number[];
  /** The Gaussian variance used. */
  variance: number;
}

export function densityOnGrid(
  quadrature: { nodes: number[][]; weights: number[][] },
  options: DensityGridOptions = {},
): DensityOnGrid {
  const { nodes, weights } = quadrature;
  const bins = options.bins ?? 10000;
  const sigmaSquared = options.sigmaSquared ?? 1e-5;
  const overhead = options.overhead ?? 0.01;
  if (!Array.isArray(nodes) || nodes.length === 0 || nodes.some((run) => run.length === 0)) {
    throw new EstimatorInputError('densityOnGrid needs at least one run with at least one node.');
  }
  if (weights.length !== nodes.length || weights.some((w, r) => w.length !== nodes[r]!.length)) {
    throw new EstimatorInputError('densityOnGrid: nodes and weights must have the same shape.');
  }
  if (!Number.isInteger(bins) || bins < 2) {
    throw new EstimatorInputError(`bins must be an integer of at least 2, got ${bins}.`);
  }
  if (!(sigmaSquared > 0)) {
    throw new EstimatorInputError(`sigmaSquared must be positive, got ${sigmaSquared}.`);
  }
  const margin = options.margin;
  if (margin !== undefined && (!(margin >= 0) || !Number.isFinite(margin))) {
    throw new EstimatorInputError(`margin must be a non-negative number, got ${margin}.`);
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const pyHessianMax = mean(nodes.map((run) => Math.max(...run))) + overhead;
  const pyHessianMin = mean(nodes.map((run) => Math.min(...run))) - overhead;
  const variance = sigmaSquared * Math.max(1, pyHessianMax - pyHessianMin);
  let lambdaMax = pyHessianMax;
  let lambdaMin = pyHessianMin;
  if (margin !== undefined) {
    const reachPastNodes = margin * Math.sqrt(variance);
    lambdaMax = Math.max(lambdaMax, Math.max(...nodes.flat()) + reachPastNodes);
    lambdaMin = Math.min(lambdaMin, Math.min(...nodes.flat()) - reachPastNodes);
  }
  const step = (lambdaMax - lambdaMin) / (bins - 1);
  const grid = Array.from({ length: bins }, (_, j) => lambdaMin + j * step);
  const normaliser = 1 / Math.sqrt(2 * Math.PI * variance);
  const density = new Float64Array(bins);
  // Gaussians are negligible beyond ~40 standard deviations; skipping them keeps this fast.
  const reach = 40 * Math.sqrt(variance);
  nodes.forEach((run, r) => {
    run.forEach((node, i) => {
      const w = weights[r]![i]!;
      if (w === 0) return;
      const from = Math.max(0, Math.floor((node - reach - lambdaMin) / step));
      const to = Math.min(bins - 1, Math.ceil((node + reach - lambdaMin) / step));
      for (let j = from; j <= to; j++) {
        const d = grid[j]! - node;
        density[j]! += (w * normaliser * Math.exp(-(d * d) / (2 * variance))) / nodes.length;
      }
    });
  });
  const total = density.reduce((a, b) => a + b, 0) * step;
  return { grid, density: Array.from(density, (d) => (total > 0 ? d / total : 0)), variance };
}
