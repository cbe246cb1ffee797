/**
 * Line charts as SVG strings (loss curves, accuracy against learning-rate scale or block
 * size), on the axis helpers of src/report/svg.ts. A null y leaves a gap (e.g. a diverged run)
 * and is marked with a cross on the bottom axis.
 */
import {
  axisFrame,
  coord,
  escapeXml,
  formatNumber,
  linearScale,
  niceTicks,
  svgDocument,
} from '../report/svg.js';

export interface Series {
  name: string;
  /** lo and hi (optional): a shaded band around the line, e.g. mean +- std over seeds. */
  points: { x: number; y: number | null; lo?: number; hi?: number }[];
}

export interface LinePlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Logarithmic x axis (base 10 ticks, or powers of two with logBase 2). */
  logX?: boolean;
  logBase?: 2 | 10;
  /** Logarithmic y axis (base 10); values <= 0 are left out. */
  logY?: boolean;
  /** Fixed y range (default: the data's, padded; in data units also with logY). */
  yRange?: [number, number];
  /** Draw a marker at every point (default true when a series has under 40 points). */
  markers?: boolean;
  width?: number;
  height?: number;
}

export const PALETTE = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
];

export function linePlotSvg(series: Series[], options: LinePlotOptions): string {
  const size = { width: options.width ?? 640, height: options.height ?? 400 };
  const area = { left: 72, top: 40, width: size.width - 96, height: size.height - 100 };
  const tx = (v: number) => (options.logX ? Math.log(v) / Math.log(options.logBase ?? 10) : v);
  const ty = (v: number | null) =>
    v == null ? null : options.logY ? (v > 0 ? Math.log10(v) : null) : v;
  series = series.map((s) => ({
    ...s,
    points: s.points.map((p) => ({
      x: p.x,
      y: ty(p.y),
      ...(p.y != null && p.lo != null && p.hi != null
        ? { lo: ty(p.lo) ?? undefined, hi: ty(p.hi) ?? undefined }
        : {}),
    })),
  }));
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => tx(p.x)).filter(Number.isFinite);
  const ys = all
    .flatMap((p) => [p.y, p.lo, p.hi])
    .filter((y): y is number => y != null && Number.isFinite(y));
  const xMin = xs.length ? Math.min(...xs) : 0;
  const xMax = xs.length ? Math.max(...xs) : 1;
  const range = options.yRange?.map((v) => ty(v) ?? 0) as [number, number] | undefined;
  let [yMin, yMax] = range ?? [ys.length ? Math.min(...ys) : 0, ys.length ? Math.max(...ys) : 1];
  if (!range) {
    const pad = (yMax - yMin) * 0.05 || Math.abs(yMax) * 0.05 || 1;
    yMin -= pad;
    yMax += pad;
  }
  const x = linearScale(xMin, xMax, area.left, area.left + area.width);
  const y = linearScale(yMin, yMax, area.top + area.height, area.top);
  const xTicks = options.logX
    ? logTicks(xMin, xMax, options.logBase ?? 10)
    : niceTicks(xMin, xMax).map((v) => ({ value: v, label: formatNumber(v) }));
  const yTicks = options.logY
    ? logTicks(yMin, yMax, 10)
    : niceTicks(yMin, yMax).map((v) => ({ value: v, label: formatNumber(v) }));
  const body = axisFrame({
    area,
    title: options.title,
    xLabel: options.xLabel,
    yLabel: options.yLabel,
    xTicks,
    yTicks,
    x,
    y,
  });
  const bottom = area.top + area.height;
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const markers = options.markers ?? s.points.length < 40;
    let path = '';
    let pen = false;
    for (const p of s.points) {
      if (p.y == null || !Number.isFinite(p.y)) {
        pen = false;
        continue;
      }
      path += `${pen ? 'L' : 'M'}${coord(x(tx(p.x)))},${coord(y(p.y))}`;
      pen = true;
    }
    const parts = [`<g class="series" data-name="${escapeXml(s.name)}">`];
    // Bands: one shaded polygon per run of consecutive points that have lo and hi.
    let run: { x: number; lo: number; hi: number }[] = [];
    const flush = () => {
      if (run.length > 1) {
        const clampY = (v: number) => Math.min(Math.max(v, yMin), yMax);
        const upper = run.map((p) => `${coord(x(tx(p.x)))},${coord(y(clampY(p.hi)))}`);
        const lower = run.map((p) => `${coord(x(tx(p.x)))},${coord(y(clampY(p.lo)))}`).reverse();
        parts.push(
          `<polygon class="band" points="${[...upper, ...lower].join(' ')}" fill="${color}" fill-opacity="0.15" stroke="none"/>`,
        );
      }
      run = [];
    };
    for (const p of s.points) {
      if (p.y != null && Number.isFinite(p.y) && p.lo != null && p.hi != null) {
        run.push({ x: p.x, lo: p.lo, hi: p.hi });
      } else flush();
    }
    flush();
    if (path) parts.push(`<path d="${path}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const p of s.points) {
      const px = coord(x(tx(p.x)));
      if (p.y == null || !Number.isFinite(p.y)) {
        parts.push(
          `<path class="missing" d="M${px},${bottom - 4}l-4,-4m4,4l4,-4m-4,4l-4,4m4,-4l4,4" stroke="${color}" stroke-width="2"/>`,
        );
      } else if (markers) {
        parts.push(`<circle cx="${px}" cy="${coord(y(p.y))}" r="3" fill="${color}"/>`);
      }
    }
    parts.push('</g>');
    body.push(parts.join(''));
  });
  // Legend, top right inside the plot area.
  const legendX = area.left + area.width - 150;
  series.forEach((s, i) => {
    const ly = area.top + 16 + i * 18;
    const color = PALETTE[i % PALETTE.length]!;
    body.push(
      `<line x1="${legendX}" y1="${ly - 4}" x2="${legendX + 20}" y2="${ly - 4}" stroke="${color}" stroke-width="2"/>` +
        `<text x="${legendX + 26}" y="${ly}" fill="#333333">${escapeXml(s.name)}</text>`,
    );
  });
  return svgDocument(size, options.title, body);
}

function logTicks(min: number, max: number, base: 2 | 10): { value: number; label: string }[] {
  const ticks: { value: number; label: string }[] = [];
  for (let e = Math.floor(min); e <= Math.ceil(max) + 1e-9; e++) {
    if (e < min - 1e-9 || e > max + 1e-9) continue;
    ticks.push({ value: e, label: formatNumber(base ** e) });
  }
  if (base === 10 && ticks.length < 3) {
    // Narrow ranges: label 1, 2, 5 times powers of ten as well.
    const extra: { value: number; label: string }[] = [];
    for (let e = Math.floor(min); e <= Math.ceil(max); e++) {
      for (const m of [1, 2, 3, 5]) {
        const v = Math.log10(m * 10 ** e);
        if (v >= min - 1e-9 && v <= max + 1e-9)
          extra.push({ value: v, label: formatNumber(m * 10 ** e) });
      }
    }
    return extra;
  }
  return ticks;
}
