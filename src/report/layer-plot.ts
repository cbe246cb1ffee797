/** Per-layer curvature as horizontal bars (trace with its standard error, or top eigenvalue). */
import type { PerLayerReport } from '../analysis/per-layer.js';
import { coord, escapeXml, formatNumber, linearScale, niceTicks, svgDocument } from './svg.js';

export interface LayerPlotOptions {
  /** What the bars show (default 'trace'). */
  metric?: 'trace' | 'topEigenvalue';
  /** Order of the bars: by value, largest first (default), or as in the model. */
  order?: 'value' | 'model';
  width?: number;
  title?: string;
}

export function layerCurvatureSvg(report: PerLayerReport, options: LayerPlotOptions = {}): string {
  const metric = options.metric ?? 'trace';
  const rows = report.blocks
    .map((b) => ({
      name: b.name,
      value: metric === 'trace' ? b.trace : (b.topEigenvalue ?? NaN),
      error: metric === 'trace' ? b.traceStdError : 0,
      noGradient: b.noGradient,
    }))
    .filter((r) => Number.isFinite(r.value));
  if ((options.order ?? 'value') === 'value') rows.sort((a, b) => b.value - a.value);
  const rowHeight = 24;
  const labelWidth = Math.min(260, 16 + 7 * Math.max(4, ...rows.map((r) => r.name.length)));
  const width = options.width ?? 720;
  const area = {
    left: labelWidth,
    top: 44,
    width: width - labelWidth - 80,
    height: Math.max(1, rows.length) * rowHeight,
  };
  const height = area.top + area.height + 56;
  const extent = (r: (typeof rows)[number]) => [
    r.value - (Number.isFinite(r.error) ? r.error : 0),
    r.value + (Number.isFinite(r.error) ? r.error : 0),
  ];
  const lo = Math.min(0, ...rows.flatMap(extent));
  const hi = Math.max(0, ...rows.flatMap(extent));
  const ticks = niceTicks(lo, hi === lo ? lo + 1 : hi, 6);
  const d0 = Math.min(lo, ticks[0] ?? lo);
  const d1 = Math.max(hi, ticks[ticks.length - 1] ?? hi);
  const x = linearScale(d0, d1 === d0 ? d0 + 1 : d1, area.left, area.left + area.width);
  const what = metric === 'trace' ? 'Hessian trace' : 'top Hessian eigenvalue';
  const title = options.title ?? `${what[0]!.toUpperCase()}${what.slice(1)} per ${report.by}`;
  const bottom = area.top + area.height;
  const body: string[] = [];
  body.push('<g class="grid" stroke="#dddddd">');
  for (const t of ticks)
    body.push(`<line x1="${coord(x(t))}" y1="${area.top}" x2="${coord(x(t))}" y2="${bottom}"/>`);
  body.push('</g>');
  rows.forEach((r, i) => {
    const yTop = area.top + i * rowHeight + 4;
    const x0 = x(Math.min(0, r.value));
    const w = Math.abs(x(r.value) - x(0));
    const fill = r.noGradient ? '#bbbbbb' : r.value < 0 ? '#d62728' : '#1f77b4';
    body.push(
      `<g class="bar"><title>${escapeXml(`${r.name}: ${formatNumber(r.value)}${r.error ? ` ± ${formatNumber(r.error)}` : ''}`)}</title>`,
    );
    body.push(
      `<rect x="${coord(x0)}" y="${coord(yTop)}" width="${coord(w)}" height="${rowHeight - 8}" fill="${fill}"/>`,
    );
    if (r.error > 0 && Number.isFinite(r.error)) {
      const cy = coord(yTop + (rowHeight - 8) / 2);
      body.push(
        `<line x1="${coord(x(r.value - r.error))}" y1="${cy}" x2="${coord(x(r.value + r.error))}" y2="${cy}" stroke="#333333"/>`,
      );
    }
    body.push(
      `<text x="${area.left - 8}" y="${coord(yTop + rowHeight / 2)}" text-anchor="end">${escapeXml(r.name)}</text>`,
    );
    const label = r.noGradient ? 'no gradient' : formatNumber(r.value);
    body.push(
      `<text x="${coord(Math.max(x(r.value + (r.error > 0 && Number.isFinite(r.error) ? r.error : 0)), x(0)) + 6)}" y="${coord(yTop + rowHeight / 2)}" fill="#333333">${escapeXml(label)}</text>`,
    );
    body.push('</g>');
  });
  body.push(
    `<line x1="${coord(x(0))}" y1="${area.top}" x2="${coord(x(0))}" y2="${bottom}" stroke="#333333"/>`,
  );
  body.push('<g class="x-ticks" text-anchor="middle" fill="#333333">');
  for (const t of ticks)
    body.push(`<text x="${coord(x(t))}" y="${bottom + 18}">${escapeXml(formatNumber(t))}</text>`);
  body.push('</g>');
  body.push(
    `<text class="title" x="${coord(width / 2)}" y="24" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`,
  );
  const xLabel =
    metric === 'trace'
      ? `trace of the ${report.by}'s Hessian block (± standard error)`
      : `top eigenvalue of the ${report.by}'s Hessian block`;
  body.push(
    `<text class="x-label" x="${coord(area.left + area.width / 2)}" y="${bottom + 42}" text-anchor="middle" font-size="13">${escapeXml(xLabel)}</text>`,
  );
  return svgDocument({ width, height }, title, body);
}
