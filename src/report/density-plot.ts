/**
 * The eigenvalue spectral density as PyHessian draws it: the smoothed density on a grid,
 * plotted as density + 1e-7 against eigenvalue with a logarithmic density axis.
 */
import {
  densityOnGrid,
  type DensityGridOptions,
  type DensityOnGrid,
} from '../estimators/density.js';
import {
  axisFrame,
  coord,
  formatNumber,
  linearScale,
  niceTicks,
  type PlotSize,
  svgDocument,
} from './svg.js';

export interface DensityPlotOptions extends Partial<PlotSize> {
  title?: string;
  /** Grid options when given nodes and weights (PyHessian's, with margin 4, by default). */
  grid?: DensityGridOptions;
  /** Mark these eigenvalues (e.g. the top eigenvalues) with dashed vertical lines. */
  markers?: number[];
}

/**
 * Kernel widths the plotted range reaches past the extreme Ritz values: PyHessian's own range
 * ends 0.01 past the runs' mean largest node and cut the top eigenvalue's peak in half.
 */
export const PLOT_MARGIN_WIDTHS = 4;

/** PyHessian adds this before taking the log so that empty regions stay on the chart. */
const FLOOR = 1e-7;

export function spectralDensitySvg(
  density: DensityOnGrid | { nodes: number[][]; weights: number[][] },
  options: DensityPlotOptions = {},
): string {
  const curve =
    'grid' in density
      ? density
      : densityOnGrid(density, { margin: PLOT_MARGIN_WIDTHS, ...options.grid });
  const size = { width: options.width ?? 640, height: options.height ?? 420 };
  const area = { left: 72, top: 40, width: size.width - 96, height: size.height - 100 };
  const xs = curve.grid;
  const logs = curve.density.map((d) => Math.log10(d + FLOOR));
  const xMin = xs[0]!;
  const xMax = xs[xs.length - 1]!;
  const yMin = Math.floor(Math.min(...logs));
  const yMax = Math.ceil(Math.max(...logs));
  const x = linearScale(xMin, xMax, area.left, area.left + area.width);
  const y = linearScale(yMin, yMax === yMin ? yMin + 1 : yMax, area.top + area.height, area.top);
  const decades = Array.from({ length: yMax - yMin + 1 }, (_, i) => yMin + i);
  const step = Math.max(1, Math.ceil(decades.length / 8));
  const body = axisFrame({
    area,
    title: options.title ?? 'Hessian eigenvalue spectral density',
    xLabel: 'Eigenvalue',
    yLabel: 'Density (log scale)',
    xTicks: niceTicks(xMin, xMax, 7).map((v) => ({ value: v, label: formatNumber(v) })),
    yTicks: decades.filter((_, i) => i % step === 0).map((d) => ({ value: d, label: `1e${d}` })),
    x,
    y,
  });
  for (const m of options.markers ?? []) {
    if (m < xMin || m > xMax) continue;
    body.push(
      `<line class="marker" x1="${coord(x(m))}" y1="${area.top}" x2="${coord(x(m))}" y2="${area.top + area.height}" stroke="#d62728" stroke-dasharray="4 3"/>`,
    );
  }
  body.push(
    `<path class="density" d="${decimatedPath(xs, logs, x, y, area.width)}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>`,
  );
  return svgDocument(size, options.title ?? 'Hessian eigenvalue spectral density', body);
}

/**
 * A polyline through the points, keeping each pixel column's first, lowest, highest and last
 * point so narrow spikes (isolated eigenvalues) survive while 10,000 points shrink to ~4 per pixel.
 */
export function decimatedPath(
  xs: readonly number[],
  ys: readonly number[],
  x: (v: number) => number,
  y: (v: number) => number,
  columns: number,
): string {
  const points: [number, number][] = [];
  let column = -1;
  let bucket: number[] = [];
  const flush = () => {
    if (bucket.length === 0) return;
    const keep = new Set<number>([bucket[0]!, bucket[bucket.length - 1]!]);
    let lo = bucket[0]!;
    let hi = bucket[0]!;
    for (const i of bucket) {
      if (ys[i]! < ys[lo]!) lo = i;
      if (ys[i]! > ys[hi]!) hi = i;
    }
    keep.add(lo).add(hi);
    for (const i of [...keep].sort((a, b) => a - b)) points.push([x(xs[i]!), y(ys[i]!)]);
    bucket = [];
  };
  const left = x(xs[0]!);
  const width = Math.max(1e-9, x(xs[xs.length - 1]!) - left);
  xs.forEach((value, i) => {
    const c = Math.min(columns - 1, Math.floor(((x(value) - left) / width) * columns));
    if (c !== column) {
      flush();
      column = c;
    }
    bucket.push(i);
  });
  flush();
  return points.map(([px, py], i) => `${i === 0 ? 'M' : 'L'}${coord(px)} ${coord(py)}`).join(' ');
}
