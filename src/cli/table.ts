/** Plain-text tables: a header row, a rule, right-aligned numbers, left-aligned text. */

export type Cell = string | number | null | undefined;

export interface TableOptions {
  /** Digits after the decimal point per column (default: as given, numbers with 3). */
  digits?: (number | undefined)[];
}

export function formatCell(value: Cell, digits = 3): string {
  if (value == null) return '-';
  if (typeof value === 'number') {
    if (Number.isNaN(value)) return 'NaN';
    if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf';
    return Number.isInteger(value) && digits === 0 ? String(value) : value.toFixed(digits);
  }
  return value;
}

export function formatTable(header: string[], rows: Cell[][], options: TableOptions = {}): string {
  const text = rows.map((row) => row.map((c, j) => formatCell(c, options.digits?.[j] ?? 3)));
  const numeric = header.map(
    (_, j) => rows.length > 0 && rows.every((r) => typeof r[j] !== 'string'),
  );
  const widths = header.map((h, j) => Math.max(h.length, ...text.map((r) => (r[j] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, j) => (numeric[j] ? c.padStart(widths[j]!) : c.padEnd(widths[j]!)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...text.map(line)].join('\n');
}

/** Rows as CSV (RFC 4180 quoting). */
export function toCsv(header: string[], rows: Cell[][]): string {
  const quote = (c: Cell) => {
    const s = c == null ? '' : String(c);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [header, ...rows].map((r) => r.map(quote).join(',')).join('\n') + '\n';
}
