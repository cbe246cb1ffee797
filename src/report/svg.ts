/**
 * A few helpers for hand-written SVG charts: escaping, number formatting, "nice" axis ticks,
 * and the frame (axes, ticks, labels) shared by the plots. No DOM and no Node built-ins, so
 * the charts render the same in browsers and in Node.
 */

export interface PlotSize {
  width: number;
  height: number;
}

/** The plotting area inside the margins. */
export interface PlotArea {
  left: number;
  top: number;
  width: number;
  height: number;
}

export function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** A coordinate with at most two decimals (SVG does not need more). */
export function coord(value: number): string {
  const rounded = Math.round(value * 100) / 100;
  return Object.is(rounded, -0) ? '0' : String(rounded);
}

/** A short label for a tick value: 0.001 -> "0.001", 12000 -> "1.2e4", 1e-7 -> "1e-7". */
export function formatNumber(value: number): string {
  if (value === 0) return '0';
  const abs = Math.abs(value);
  if (abs >= 1e-3 && abs < 1e5) return String(Number(value.toPrecision(4)));
  const [mantissa, exponent] = value.toExponential(2).split('e');
  const m = String(Number(mantissa));
  return `${m}e${Number(exponent)}`;
}

/** About `count` evenly spaced round values (steps of 1, 2 or 5 times a power of ten) covering [min, max]. */
export function niceTicks(min: number, max: number, count = 6): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min === max) return [min];
  const raw = (max - min) / Math.max(1, count - 1);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const ticks: number[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) {
    ticks.push(Math.abs(t) < step * 1e-9 ? 0 : Number(t.toPrecision(12)));
  }
  return ticks;
}

/** A linear map from [d0, d1] to [r0, r1]; a zero-width domain maps to the middle. */
export function linearScale(d0: number, d1: number, r0: number, r1: number): (v: number) => number {
  if (d1 === d0) return () => (r0 + r1) / 2;
  return (v) => r0 + ((v - d0) / (d1 - d0)) * (r1 - r0);
}

export function svgDocument(size: PlotSize, title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${size.width}" height="${size.height}" viewBox="0 0 ${size.width} ${size.height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect width="${size.width}" height="${size.height}" fill="#ffffff"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

export interface AxisFrame {
  area: PlotArea;
  title: string;
  xLabel: string;
  yLabel: string;
  /** Tick positions in data units with their labels. */
  xTicks: { value: number; label: string }[];
  yTicks: { value: number; label: string }[];
  x: (v: number) => number;
  y: (v: number) => number;
  /** Light grid lines at the ticks (default true). */
  grid?: boolean;
}

/** Axes box, ticks, grid, tick labels, axis labels and title. */
export function axisFrame(frame: AxisFrame): string[] {
  const { area, x, y } = frame;
  const right = area.left + area.width;
  const bottom = area.top + area.height;
  const out: string[] = [];
  const grid = frame.grid ?? true;
  out.push('<g class="grid" stroke="#dddddd" stroke-width="1">');
  if (grid) {
    for (const t of frame.xTicks)
      out.push(
        `<line x1="${coord(x(t.value))}" y1="${area.top}" x2="${coord(x(t.value))}" y2="${bottom}"/>`,
      );
    for (const t of frame.yTicks)
      out.push(
        `<line x1="${area.left}" y1="${coord(y(t.value))}" x2="${right}" y2="${coord(y(t.value))}"/>`,
      );
  }
  out.push('</g>');
  out.push(
    `<rect class="frame" x="${area.left}" y="${area.top}" width="${area.width}" height="${area.height}" fill="none" stroke="#333333"/>`,
  );
  out.push('<g class="x-ticks" text-anchor="middle" fill="#333333">');
  for (const t of frame.xTicks) {
    const px = coord(x(t.value));
    out.push(`<line x1="${px}" y1="${bottom}" x2="${px}" y2="${bottom + 5}" stroke="#333333"/>`);
    out.push(`<text x="${px}" y="${bottom + 18}">${escapeXml(t.label)}</text>`);
  }
  out.push('</g>');
  out.push('<g class="y-ticks" text-anchor="end" fill="#333333">');
  for (const t of frame.yTicks) {
    const py = coord(y(t.value));
    out.push(
      `<line x1="${area.left - 5}" y1="${py}" x2="${area.left}" y2="${py}" stroke="#333333"/>`,
    );
    out.push(
      `<text x="${area.left - 8}" y="${coord(y(t.value) + 4)}">${escapeXml(t.label)}</text>`,
    );
  }
  out.push('</g>');
  out.push(
    `<text class="title" x="${coord(area.left + area.width / 2)}" y="${coord(area.top - 14)}" text-anchor="middle" font-size="15">${escapeXml(frame.title)}</text>`,
  );
  out.push(
    `<text class="x-label" x="${coord(area.left + area.width / 2)}" y="${coord(bottom + 40)}" text-anchor="middle" font-size="13">${escapeXml(frame.xLabel)}</text>`,
  );
  const cy = coord(area.top + area.height / 2);
  out.push(
    `<text class="y-label" x="16" y="${cy}" text-anchor="middle" font-size="13" transform="rotate(-90 16 ${cy})">${escapeXml(frame.yLabel)}</text>`,
  );
  return out;
}

/** The viridis colour map (matplotlib's default), interpolated between 9 stops; t in [0, 1]. */
export function viridis(t: number): string {
  const stops = [
    [68, 1, 84],
    [71, 44, 122],
    [59, 81, 139],
    [44, 113, 142],
    [33, 144, 141],
    [39, 173, 129],
    [92, 200, 99],
    [170, 220, 50],
    [253, 231, 37],
  ];
  const u = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(u));
  const f = u - i;
  const c = stops[i]!.map((a, k) => Math.round(a + f * (stops[i + 1]![k]! - a)));
  return `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;
}
