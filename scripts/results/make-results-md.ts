/**
 * Fills the generated blocks of docs/RESULTS.md from docs/results/*.json: between
 * `<!-- results:NAME -->` and `<!-- /results:NAME -->`, the command, its wall time and the
 * table (or "pending" with the command to run), and the plots. Everything else in the page is
 * written by hand and left as it is.
 *
 *   npx tsx scripts/results/make-results-md.ts
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { commandLine, readResult, RESULTS_DIR, ROOT, TABLES, type Table } from './tables.js';

const PAGE = join(ROOT, 'docs', 'RESULTS.md');

type Row = Record<string, number | string | null>;

const fixed = (v: unknown, digits: number) =>
  typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '-';

/** "71.3 ± 2.1" (accuracy in %, or bits per character), with diverged seeds noted. */
function cell(r: Row, text: boolean): string {
  const [m, s, scale, digits] = text
    ? [r.testBitsPerCharMean, r.testBitsPerCharStd, 1, 3]
    : [r.testAccuracyMean, r.testAccuracyStd, 100, 1];
  if (m == null) return 'diverged';
  const value = `${((m as number) * scale).toFixed(digits)} ± ${((s as number) * scale).toFixed(digits)}`;
  return (r.diverged as number) > 0 ? `${value} (${r.diverged}/${r.seeds} diverged)` : value;
}

function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function sweepTable(rows: Row[], text: boolean): string {
  const main = text ? 'test bits/char' : 'test acc %';
  const lr = rows.filter((r) => r.part === 'learning-rate');
  const ab = rows.filter((r) => r.part === 'adahessian');
  const parts: string[] = [];
  const scales = [...new Set(lr.map((r) => r.scale as number))];
  if (scales.length > 1) {
    const names = [...new Set(lr.map((r) => r.optimizer as string))];
    parts.push(
      markdownTable(
        ['optimizer', 'base lr', ...scales.map((s) => `×${s}`)],
        names.map((n) => {
          const of = lr.filter((r) => r.optimizer === n);
          return [
            n,
            String(of[0]!.baseLr),
            ...scales.map((s) => {
              const r = of.find((x) => x.scale === s);
              return r ? cell(r, text) : '';
            }),
          ];
        }),
      ),
    );
  } else if (lr.length > 0) {
    parts.push(
      markdownTable(
        ['optimizer', 'lr', 'seeds', main, 'test loss', 'final train loss', 's/epoch*'],
        lr.map((r) => [
          r.optimizer as string,
          String(r.lr),
          String(r.seeds),
          cell(r, text),
          fixed(r.testLossMean, 4),
          fixed(r.trainLossMean, 4),
          fixed(r.secondsPerEpochMean, 1),
        ]),
      ),
    );
  }
  if (ab.length > 0) {
    parts.push(
      markdownTable(
        ['block size', 'k', 'f', 'lr', 'seeds', main, 'test loss', 'final train loss', 's/epoch*'],
        ab.map((r) => [
          String(r.blockSize),
          String(r.hessianPower),
          String(r.hessianEvery),
          String(r.lr),
          String(r.seeds),
          cell(r, text),
          fixed(r.testLossMean, 4),
          fixed(r.trainLossMean, 4),
          fixed(r.secondsPerEpochMean, 1),
        ]),
      ),
    );
  }
  return parts.join('\n\n');
}

function benchTable(rows: Row[]): string {
  return markdownTable(
    ['optimizer', 'ms/step*', '× SGD', '× Adam', 'theory × SGD', 'paper × SGD', 'paper × Adam'],
    rows.map((r) => [
      r.name as string,
      fixed(r.msPerStep, 1),
      fixed(r.xSgd, 2),
      fixed(r.xAdam, 2),
      fixed(r.theoryXSgd, 2),
      fixed(r.paperXSgd, 2),
      fixed(r.paperXAdam, 2),
    ]),
  );
}

function block(table: Table): string {
  const result = readResult(table.name);
  const args = table.args();
  const lines: string[] = [];
  if (result === null) {
    lines.push(
      args === null
        ? `*Pending: not run yet; it needs ${table.needs}.*`
        : `*Pending: not run yet.* Command:\n\n\`\`\`sh\n${commandLine(args)}\n\`\`\``,
    );
    return lines.join('\n');
  }
  // The command that reproduces the table now (tables.ts), which may pin what was the default
  // when it ran (--step-graphs, --threads 1); the file keeps the command as it was typed then.
  const now = args === null ? result.command : commandLine(args);
  lines.push('```sh', `${now} --json`, '```', '');
  if (now !== result.command) {
    // The pinning flags the recorded command lacks.
    const added = [/ --step-graphs \S+/, / --threads 1(?= |$)/]
      .map((flag) => now.match(flag)?.[0])
      .filter((flag): flag is string => flag !== undefined && !result.command.includes(flag));
    const pinned = added.reduce((c, flag) => c.replace(flag, ''), now) === result.command;
    const names = added.map((flag) => `\`${flag.trim().replace(/^(--step-graphs) \S+$/, '$1')}\``);
    lines.push(
      pinned
        ? `(results/${table.name}.json records the command without ${names.join(' and ')}, which came later: ${names.length > 1 ? 'the flags pin' : 'the flag pins'} the path the run took by default then.)`
        : `Recorded in the file as \`${result.command}\`.`,
      '',
    );
  }
  const minutes = (result.seconds / 60).toFixed(1);
  lines.push(
    `Wall time ${minutes} min on ${result.machine} (${result.finishedAt.slice(0, 10)}); raw rows: [results/${table.name}.json](results/${table.name}.json).`,
    '',
  );
  const text = result.command.includes('--dataset text');
  lines.push(
    result.command.includes(' bench ')
      ? benchTable(result.rows as Row[])
      : sweepTable(result.rows as Row[], text),
  );
  // A plot of a single point says nothing: only sweeps over several scales or settings.
  const rows = result.rows as Row[];
  const plots = {
    'learning-rate': new Set(rows.filter((r) => r.part === 'learning-rate').map((r) => r.scale))
      .size,
    adahessian: rows.filter((r) => r.part === 'adahessian').length,
  };
  for (const [plot, points] of Object.entries(plots)) {
    const file = `${table.name}-${plot}.svg`;
    if (points > 1 && existsSync(join(RESULTS_DIR, file))) {
      lines.push('', `![${table.title}](results/${file})`);
    }
  }
  return lines.join('\n');
}

let page = readFileSync(PAGE, 'utf8');
for (const table of TABLES) {
  const open = `<!-- results:${table.name} -->`;
  const close = `<!-- /results:${table.name} -->`;
  const start = page.indexOf(open);
  const end = page.indexOf(close);
  if (start < 0 || end < start) {
    console.warn(`docs/RESULTS.md has no block for ${table.name}; add ${open} ... ${close}`);
    continue;
  }
  page = `${page.slice(0, start + open.length)}\n${block(table)}\n${page.slice(end)}`;
}
writeFileSync(PAGE, page);
console.log(`wrote ${PAGE}`);
