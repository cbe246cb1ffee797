/** Loss landscapes: a line along one direction, a heat map with contours over a plane. */
import type { Landscape1d, Landscape2d } from '../analysis/landscape.js';
import {
  axisFrame,
  coord,
  escapeXml,
  formatNumber,
  linearScale,
  niceTicks,
  type PlotSize,
  svgDocument,
  viridis,
} from './svg.js';

export interface LandscapePlotOptions extends Partial<PlotSize> {
  title?: string;
  /** Axis names for the directions (default 'top eigenvector' and 'second eigenvector'). */
  xLabel?: string;
  yLabel?: string;
}

export function landscape1dSvg(landscape: Landscape1d, options: LandscapePlotOptions = {}): string {
  const size = { width: options.width ?? 640, height: options.height ?? 420 };
  const area = { left: 80, top: 40, width: size.width - 104, height: size.height - 100 };
  const { alphas, losses } = landscape;
  const lo = Math.min(...losses);
  const hi = Math.max(...losses);
  const pad = (hi - lo) * 0.05 || Math.abs(hi) * 0.05 || 1;
  const yTicks = niceTicks(lo - pad, hi + pad, 6);
  const x = linearScale(alphas[0]!, alphas[alphas.length - 1]!, area.left, area.left + area.width);
  const y = linearScale(lo - pad, hi + pad, area.top + area.height, area.top);
  const title = options.title ?? 'Loss along the top Hessian eigenvector';
  const body = axisFrame({
    area,
    title,
    xLabel: options.xLabel ?? 'step along the top eigenvector',
    yLabel: options.yLabel ?? 'loss',
    xTicks: niceTicks(alphas[0]!, alphas[alphas.length - 1]!, 7).map((v) => ({
      value: v,
      label: formatNumber(v),
    })),
    yTicks: yTicks.map((v) => ({ value: v, label: formatNumber(v) })),
    x,
    y,
  });
  const d = alphas
    .map((a, i) => `${i === 0 ? 'M' : 'L'}${coord(x(a))} ${coord(y(losses[i]!))}`)
    .join(' ');
  body.push(`<path class="loss" d="${d}" fill="none" stroke="#1f77b4" stroke-width="2"/>`);
  body.push('<g class="points" fill="#1f77b4">');
  alphas.forEach((a, i) =>
    body.push(`<circle cx="${coord(x(a))}" cy="${coord(y(losses[i]!))}" r="2.5"/>`),
  );
  body.push('</g>');
  return svgDocument(size, title, body);
}

export function landscape2dSvg(
  landscape: Landscape2d,
  options: LandscapePlotOptions & { contours?: number } = {},
): string {
  const size = { width: options.width ?? 600, height: options.height ?? 520 };
  const area = { left: 80, top: 40, width: size.width - 180, height: size.height - 100 };
  const { alphas, betas, losses } = landscape;
  const flat = losses.flat();
  const lo = Math.min(...flat);
  const hi = Math.max(...flat);
  const t = (v: number) => (hi === lo ? 0.5 : (v - lo) / (hi - lo));
  const x = linearScale(alphas[0]!, alphas[alphas.length - 1]!, area.left, area.left + area.width);
  const y = linearScale(betas[0]!, betas[betas.length - 1]!, area.top + area.height, area.top);
  const title = options.title ?? 'Loss on the plane of the top two Hessian eigenvectors';
  const body: string[] = [];
  // Cells centred on the grid points.
  const half = (values: number[], i: number) => [
    i === 0 ? values[0]! : (values[i - 1]! + values[i]!) / 2,
    i === values.length - 1 ? values[i]! : (values[i]! + values[i + 1]!) / 2,
  ];
  body.push('<g class="cells" shape-rendering="crispEdges">');
  alphas.forEach((_, i) => {
    const [a0, a1] = half(alphas, i);
    betas.forEach((__, j) => {
      const [b0, b1] = half(betas, j);
      body.push(
        `<rect x="${coord(x(a0!))}" y="${coord(y(b1!))}" width="${coord(x(a1!) - x(a0!))}" height="${coord(y(b0!) - y(b1!))}" fill="${viridis(t(losses[i]![j]!))}"><title>${escapeXml(formatNumber(losses[i]![j]!))}</title></rect>`,
      );
    });
  });
  body.push('</g>');
  const levels = niceTicks(lo, hi, options.contours ?? 8).filter((l) => l > lo && l < hi);
  body.push(
    '<g class="contours" stroke="#ffffff" stroke-width="1" stroke-opacity="0.8" fill="none">',
  );
  for (const level of levels) {
    const d = contourSegments(alphas, betas, losses, level)
      .map(([p, q]) => `M${coord(x(p[0]))} ${coord(y(p[1]))} L${coord(x(q[0]))} ${coord(y(q[1]))}`)
      .join(' ');
    if (d) body.push(`<path d="${d}"/>`);
  }
  body.push('</g>');
  body.push(
    ...axisFrame({
      area,
      title,
      xLabel: options.xLabel ?? 'step along the top eigenvector',
      yLabel: options.yLabel ?? 'step along the second eigenvector',
      xTicks: niceTicks(alphas[0]!, alphas[alphas.length - 1]!, 6).map((v) => ({
        value: v,
        label: formatNumber(v),
      })),
      yTicks: niceTicks(betas[0]!, betas[betas.length - 1]!, 6).map((v) => ({
        value: v,
        label: formatNumber(v),
      })),
      x,
      y,
      grid: false,
    }),
  );
  // Colour bar.
  const barX = area.left + area.width + 24;
  const steps = 50;
  body.push('<g class="colorbar" shape-rendering="crispEdges">');
  for (let k = 0; k < steps; k++) {
    const h = area.height / steps;
    body.push(
      `<rect x="${barX}" y="${coord(area.top + area.height - (k + 1) * h)}" width="16" height="${coord(h + 0.5)}" fill="${viridis((k + 0.5) / steps)}"/>`,
    );
  }
  body.push('</g>');
  const barScale = linearScale(lo, hi, area.top + area.height, area.top);
  body.push('<g class="colorbar-ticks" fill="#333333">');
  for (const v of niceTicks(lo, hi, 5))
    body.push(
      `<text x="${barX + 22}" y="${coord(barScale(v) + 4)}">${escapeXml(formatNumber(v))}</text>`,
    );
  body.push('</g>');
  return svgDocument(size, title, body);
}

type Point = [number, number];

/** Marching squares: the segments where the bilinear surface crosses `level`. */
export function contourSegments(
  xs: number[],
  ys: number[],
  values: number[][],
  level: number,
): [Point, Point][] {
  const segments: [Point, Point][] = [];
  const cross = (p: Point, q: Point, vp: number, vq: number): Point => {
    const f = vq === vp ? 0.5 : (level - vp) / (vq - vp);
    return [p[0] + f * (q[0] - p[0]), p[1] + f * (q[1] - p[1])];
  };
  for (let i = 0; i + 1 < xs.length; i++) {
    for (let j = 0; j + 1 < ys.length; j++) {
      const corners: Point[] = [
        [xs[i]!, ys[j]!],
        [xs[i + 1]!, ys[j]!],
        [xs[i + 1]!, ys[j + 1]!],
        [xs[i]!, ys[j + 1]!],
      ];
      const v = [values[i]![j]!, values[i + 1]![j]!, values[i + 1]![j + 1]!, values[i]![j + 1]!];
      const points: Point[] = [];
      for (let e = 0; e < 4; e++) {
        const a = v[e]!;
        const b = v[(e + 1) % 4]!;
        if (a < level !== b < level) points.push(cross(corners[e]!, corners[(e + 1) % 4]!, a, b));
      }
      // Two crossings: one segment; four (a saddle): pair them in edge order.
      for (let k = 0; k + 1 < points.length; k += 2) segments.push([points[k]!, points[k + 1]!]);
    }
  }
  return segments;
}
