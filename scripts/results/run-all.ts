/**
 * Runs the tables of docs/RESULTS.md one after another, each as its `adahessian` command with
 * --json, and writes docs/results/<name>.json ({ command, seconds, machine, rows }) and its
 * plots when the command finishes. Resumable at two levels: a table whose JSON exists is
 * skipped, and a sweep killed half-way reuses its finished runs (--resume, from out/results/).
 *
 *   npx tsx scripts/results/run-all.ts                 # every table not yet done, in order
 *   npx tsx scripts/results/run-all.ts quick ablation  # only these
 *   npx tsx scripts/results/run-all.ts --verify quick  # run again afresh, compare the numbers
 *
 * Progress and each command's stderr go to out/results/<name>.log.
 *
 * out/ is not tracked, and a session's processes end with it: the finished runs of a sweep are
 * mirrored to docs/results/runs/<name>/ (tracked; commit them) every 30 s, and copied back into
 * out/results/<name>/runs/ before the sweep starts, so a fresh clone resumes where the last
 * session stopped.
 */
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { commandLine, readResult, RESULTS_DIR, ROOT, TABLES, type ResultFile } from './tables.js';

const OUT = join(ROOT, 'out', 'results');

function machine(): string {
  const cpu = cpus();
  return `${cpu.length} x ${cpu[0]?.model ?? 'unknown CPU'}, Node ${process.version}`;
}

/** Runs `adahessian args` with --json; returns its parsed stdout and the wall seconds. */
async function runCommand(
  args: string[],
  log: string,
  onTick: (seconds: number) => void,
): Promise<{ doc: Record<string, unknown>; seconds: number }> {
  const started = performance.now();
  const err = openSync(log, 'a');
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'adahessian.js'), ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', err],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const timer = setInterval(() => onTick((performance.now() - started) / 1000), 30_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearInterval(timer);
  const seconds = (performance.now() - started) / 1000;
  onTick(seconds);
  if (code !== 0) throw new Error(`adahessian ${args.join(' ')} exited with ${code}; see ${log}`);
  return { doc: JSON.parse(out) as Record<string, unknown>, seconds };
}

/** Wall seconds spent by earlier, interrupted invocations of a table (mirrored with the runs). */
function elapsedFile(name: string): string {
  return join(OUT, name, 'elapsed-seconds.json');
}

/** Copies every file of `from` that `to` lacks or holds older (finished runs are never rewritten). */
function mirror(from: string, to: string): void {
  if (!existsSync(from)) return;
  mkdirSync(to, { recursive: true });
  for (const file of readdirSync(from)) {
    if (!file.endsWith('.json')) continue;
    const target = join(to, file);
    if (!existsSync(target) || statSync(target).mtimeMs < statSync(join(from, file)).mtimeMs)
      copyFileSync(join(from, file), target);
  }
}

/** Tracked copy of a pending sweep's finished runs (out/ is not tracked). */
function savedRuns(name: string): string {
  return join(RESULTS_DIR, 'runs', name);
}

async function runTable(name: string, verify: boolean): Promise<void> {
  const table = TABLES.find((t) => t.name === name);
  if (table === undefined)
    throw new Error(`No table '${name}'; known: ${TABLES.map((t) => t.name).join(', ')}`);
  const args = table.args();
  if (args === null) {
    console.log(`${name}: waiting for ${table.needs}`);
    return;
  }
  mkdirSync(OUT, { recursive: true });
  const log = join(OUT, `${name}${verify ? '-verify' : ''}.log`);
  if (verify) {
    const done = readResult(name);
    if (done === null)
      throw new Error(`--verify ${name}: docs/results/${name}.json does not exist yet.`);
    const fresh = args.map((a) => (a === `out/results/${name}` ? `out/results/${name}-verify` : a));
    rmSync(join(ROOT, 'out', 'results', `${name}-verify`), { recursive: true, force: true });
    console.log(`${name}: verifying, ${commandLine(fresh)} --json`);
    const { doc, seconds } = await runCommand([...fresh, '--json'], log, () => {});
    const numbers = (rows: Record<string, unknown>[]) =>
      JSON.stringify(
        rows.map((r) =>
          Object.fromEntries(Object.entries(r).filter(([k]) => !/seconds|ms|rounds|^x/i.test(k))),
        ),
      );
    const same = numbers(doc.rows as Record<string, unknown>[]) === numbers(done.rows);
    console.log(
      `${name}: ${same ? 'the same' : 'DIFFERENT'} accuracy and loss numbers (${seconds.toFixed(0)} s)`,
    );
    if (!same) process.exitCode = 1;
    return;
  }
  if (readResult(name) !== null) {
    console.log(`${name}: done (docs/results/${name}.json)`);
    return;
  }
  mkdirSync(join(OUT, name), { recursive: true });
  // A fresh clone: take the runs and elapsed time an earlier session committed.
  mirror(join(savedRuns(name), 'runs'), join(OUT, name, 'runs'));
  if (!existsSync(elapsedFile(name)) && existsSync(join(savedRuns(name), 'elapsed-seconds.json')))
    copyFileSync(join(savedRuns(name), 'elapsed-seconds.json'), elapsedFile(name));
  const before = existsSync(elapsedFile(name))
    ? (JSON.parse(readFileSync(elapsedFile(name), 'utf8')) as number)
    : 0;
  console.log(`${name}: ${commandLine(args)} --json   (log: ${log})`);
  const { doc, seconds } = await runCommand(
    [...args, '--json', ...(args[0] === 'sweep' ? ['--resume'] : [])],
    log,
    (s) => {
      writeFileSync(elapsedFile(name), JSON.stringify(before + s));
      mirror(join(OUT, name, 'runs'), join(savedRuns(name), 'runs'));
      mirror(join(OUT, name), savedRuns(name));
    },
  );
  const result: ResultFile = {
    command: commandLine(args),
    seconds: Math.round(before + seconds),
    machine: machine(),
    finishedAt: new Date().toISOString(),
    rows: doc.rows as Record<string, unknown>[],
  };
  mkdirSync(RESULTS_DIR, { recursive: true });
  const files = (doc.files ?? {}) as Record<string, string>;
  for (const [key, path] of Object.entries(files)) {
    if (!path.endsWith('.svg')) continue;
    copyFileSync(
      join(ROOT, path),
      join(RESULTS_DIR, `${name}-${key === 'lrPlot' ? 'learning-rate' : 'adahessian'}.svg`),
    );
  }
  writeFileSync(join(RESULTS_DIR, `${name}.json`), `${JSON.stringify(result, null, 2)}\n`);
  console.log(`${name}: wrote docs/results/${name}.json (${result.seconds} s)`);
}

const argv = process.argv.slice(2);
const verify = argv.includes('--verify');
const names = argv.filter((a) => a !== '--verify');
for (const name of names.length > 0 ? names : TABLES.map((t) => t.name)) {
  await runTable(name, verify);
}
// Sweeps leave their runs in out/results/<name>/runs: list how many exist, for the log.
for (const t of TABLES) {
  const runs = join(OUT, t.name, 'runs');
  if (existsSync(runs))
    console.log(`${t.name}: ${readdirSync(runs).length} finished runs in ${runs}`);
}
