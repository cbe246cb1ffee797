/**
 * A self-contained HTML report: headings, paragraphs, tables and inline SVG figures, in one
 * file with no external resources, so it opens anywhere (and can be mailed or archived).
 * Browser-safe: builds a string, writes nothing.
 */
import { escapeXml } from './svg.js';

export type HtmlCell = string | number | null | undefined;

export interface HtmlTable {
  header: string[];
  rows: HtmlCell[][];
  /** Digits after the decimal point per column for numbers (default 3). */
  digits?: (number | undefined)[];
}

export interface HtmlFigure {
  /** An SVG document (as the src/report plots return). */
  svg: string;
  caption: string;
}

export interface HtmlSection {
  heading: string;
  paragraphs?: string[];
  table?: HtmlTable;
  figures?: HtmlFigure[];
  /** Preformatted text (e.g. a command line). */
  code?: string;
}

export interface HtmlReport {
  title: string;
  /** Shown under the title (e.g. when and how the report was made). */
  subtitle?: string;
  sections: HtmlSection[];
}

const STYLE = `
body { font-family: Helvetica, Arial, sans-serif; max-width: 1400px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
.subtitle { color: #666; margin-top: 0; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { padding: 0.3em 0.8em; border-bottom: 1px solid #e4e4e4; }
th { text-align: left; background: #f6f6f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; }
figcaption { color: #555; font-size: 0.9em; max-width: 640px; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
`;

function cell(value: HtmlCell, digits: number): string {
  if (value == null) return '<td>-</td>';
  if (typeof value === 'number') {
    const text = Number.isFinite(value) ? value.toFixed(digits) : String(value);
    return `<td class="num">${text}</td>`;
  }
  return `<td>${escapeXml(value)}</td>`;
}

function table(t: HtmlTable): string {
  const head = `<tr>${t.header.map((h) => `<th>${escapeXml(h)}</th>`).join('')}</tr>`;
  const rows = t.rows.map(
    (r) => `<tr>${r.map((c, j) => cell(c, t.digits?.[j] ?? 3)).join('')}</tr>`,
  );
  return `<table>\n${head}\n${rows.join('\n')}\n</table>`;
}

/** An SVG document inlined into HTML: without an XML declaration, if it has one. */
function inlineSvg(svg: string): string {
  return svg.replace(/^<\?xml[^>]*>\s*/, '').trim();
}

export function renderHtmlReport(report: HtmlReport): string {
  const parts = [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<title>${escapeXml(report.title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    `<h1>${escapeXml(report.title)}</h1>`,
  ];
  if (report.subtitle) parts.push(`<p class="subtitle">${escapeXml(report.subtitle)}</p>`);
  for (const s of report.sections) {
    parts.push(`<section>`, `<h2>${escapeXml(s.heading)}</h2>`);
    for (const p of s.paragraphs ?? []) parts.push(`<p>${escapeXml(p)}</p>`);
    if (s.table) parts.push(table(s.table));
    if (s.code) parts.push(`<pre>${escapeXml(s.code)}</pre>`);
    if (s.figures?.length) {
      parts.push('<div class="figures">');
      for (const f of s.figures) {
        parts.push(
          `<figure>${inlineSvg(f.svg)}<figcaption>${escapeXml(f.caption)}</figcaption></figure>`,
        );
      }
      parts.push('</div>');
    }
    parts.push('</section>');
  }
  parts.push('</body>', '</html>', '');
  return parts.join('\n');
}
