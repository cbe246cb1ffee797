/** Shared pieces of the command-line tests: running the CLI in-process and as a child process. */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryContext } from '../../src/cli/context.js';
import { runCli } from '../../src/cli/main.js';

export const ROOT = join(import.meta.dirname, '..', '..');

export function tempDir(prefix = 'adahessian-cli-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Runs `adahessian <args>` in this process; output is collected, not printed. */
export async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const ctx = memoryContext();
  const code = await runCli(args, ctx);
  return { code, out: ctx.out(), err: ctx.err() };
}

/** The name of the weights file that `modelDir`/model.json names (saves name it by content). */
export function weightsFileOf(modelDir: string): string {
  const json = JSON.parse(readFileSync(join(modelDir, 'model.json'), 'utf8'));
  return json.weightsManifest[0].paths[0] as string;
}

/** The bytes of the weights a training --out directory's model/model.json names. */
export function savedWeights(out: string): Buffer {
  const modelDir = join(out, 'model');
  return readFileSync(join(modelDir, weightsFileOf(modelDir)));
}

/** A tiny but real training setup: the MLP on 64 slice images, on the cpu backend. */
export const TINY = [
  '--model',
  'mlp',
  '--train-size',
  '64',
  '--test-size',
  '32',
  '--batch-size',
  '16',
  '--backend',
  'cpu',
  '--quiet',
];

export interface Spawned {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

/**
 * Runs `npx adahessian <args>` as a child process in the repository (as a user would), or with
 * `direct`, `node bin/adahessian.js <args>` (one process, so that killing it kills the CLI).
 * `onStart` receives the child, e.g. to kill it.
 */
export function spawnCli(
  args: string[],
  options: {
    env?: NodeJS.ProcessEnv;
    direct?: boolean;
    onStart?: (child: ReturnType<typeof spawn>) => void;
  } = {},
): Promise<Spawned> {
  const [command, prefix] = options.direct
    ? [process.execPath, [join(ROOT, 'bin', 'adahessian.js')]]
    : ['npx', ['--no-install', 'adahessian']];
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...prefix, ...args], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, out, err }));
    options.onStart?.(child);
  });
}
