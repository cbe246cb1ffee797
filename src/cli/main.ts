/**
 * The `adahessian` command line: train, analyze, bench, sweep and demo. runCli() parses and
 * runs one command and returns the exit code (0 ok, 1 a run failed, 2 bad usage, 130
 * interrupted); it never calls process.exit, so tests and other programs can call it.
 */
import { Command, CommanderError } from 'commander';
import * as tf from '@tensorflow/tfjs';
import { AnalysisInputError } from '../analysis/errors.js';
import { IdxFormatError } from '../data/index.js';
import { WasmHeapFullError } from '../wasm-heap.js';
import { EstimatorInputError } from '../estimators/operator.js';
import {
  HvpInputError,
  NonFiniteError,
  UnsupportedSecondOrderError,
  UnverifiedBackendError,
} from '../index.js';
import { analyzeCommand } from './commands/analyze.js';
import { benchCommand } from './commands/bench.js';
import { demoCommand } from './commands/demo.js';
import { sweepCommand } from './commands/sweep.js';
import { trainCommand } from './commands/train.js';
import { processContext, type CliContext } from './context.js';
import { CliRunError, CliUsageError } from './errors.js';

export function buildProgram(ctx: CliContext): Command {
  const program = configure(
    new Command('adahessian')
      .description(
        'AdaHessian and Hessian analysis for TensorFlow.js: train, analyze, benchmark and sweep from the command line.',
      )
      .version(VERSION)
      .option(
        '--debug',
        'print the stack trace of every error (default: one line for known errors)',
      ),
    ctx,
  );
  const commands = [
    demoCommand(ctx),
    trainCommand(ctx),
    analyzeCommand(ctx),
    benchCommand(ctx),
    sweepCommand(ctx),
  ];
  for (const c of commands) program.addCommand(configure(c, ctx));
  return program;
}

const VERSION = '0.1.0';

/**
 * Errors and help go through the context's io; no process.exit. A usage error is one line, the
 * pointer to --help included (commander would print it, and a "Did you mean" hint, on lines of
 * their own).
 */
function configure(cmd: Command, ctx: CliContext): Command {
  const help =
    cmd.name() === 'adahessian' ? 'adahessian --help' : `adahessian ${cmd.name()} --help`;
  return cmd.exitOverride().configureOutput({
    writeOut: (s) => void ctx.io({}).stdout.write(s),
    writeErr: (s) => void ctx.io({}).stderr.write(s),
    outputError: (s, write) => write(`${s.trim().replace(/\s*\n\s*/g, ' ')} (see ${help})\n`),
  });
}

/** Parses `args` (without node and the script path) and runs the command. */
export async function runCli(args: string[], ctx: CliContext = processContext()): Promise<number> {
  tf.enableProdMode(); // no "install tfjs-node" banner, no debug checks
  const program = buildProgram(ctx);
  program.hook('preAction', (_program, action) => {
    ctx.command = action.name();
  });
  try {
    await program.parseAsync(args, { from: 'user' });
    return ctx.exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version exit 0; commander has already printed its error message.
      if (
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        e.code === 'commander.help'
      )
        return 0;
      return 2;
    }
    const stderr = ctx.io({}).stderr;
    const debug = program.opts().debug === true;
    if (e instanceof CliUsageError || e instanceof CliRunError || isKnownError(e)) {
      // One line, as promised, even where a message quotes a file's lines (a JSON parse error).
      stderr.write(`error: ${e.message.replace(/\s*\n\s*/g, ' ')}\n`);
      if (debug) stderr.write(`${stackWithCauses(e)}\n`);
      return e instanceof CliUsageError || e instanceof CliRunError ? e.exitCode : 1;
    }
    // Anything else is a bug: the stack helps whoever reports it.
    stderr.write(`error: ${debug ? stackWithCauses(e) : ((e as Error)?.stack ?? String(e))}\n`);
    return 1;
  }
}

/** The library's own errors about its input: their message says what is wrong. */
function isKnownError(e: unknown): e is Error {
  return (
    e instanceof HvpInputError ||
    e instanceof UnsupportedSecondOrderError ||
    e instanceof UnverifiedBackendError || // e.g. --backend tensorflow with a Hessian step
    e instanceof NonFiniteError ||
    e instanceof EstimatorInputError ||
    e instanceof AnalysisInputError ||
    e instanceof IdxFormatError ||
    e instanceof WasmHeapFullError
  );
}

function stackWithCauses(e: unknown): string {
  const parts: string[] = [];
  for (let x: unknown = e; x != null && parts.length < 5; x = (x as Error).cause) {
    parts.push((x as Error).stack ?? String(x));
  }
  return parts.join('\ncaused by: ');
}

/**
 * Commands that stop cleanly on Ctrl-C (after the current step, with a checkpoint). The others
 * (analyze, bench, demo, sweep) have nothing to save that they have not saved already, each
 * file atomically (a sweep's finished runs, which `sweep --resume` reuses), so Ctrl-C ends
 * them at once rather than promising a checkpoint and running on.
 */
const STOPS_CLEANLY_ON_CTRL_C = new Set(['train']);

/** The process entry point (bin/adahessian.js): Ctrl-C asks the running command to stop cleanly. */
export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const controller = new AbortController();
  const ctx = processContext(controller.signal);
  const onSigint = () => {
    if (!STOPS_CLEANLY_ON_CTRL_C.has(ctx.command ?? '')) {
      process.stderr.write('\nStopped (Ctrl-C).\n');
      process.exit(130);
    }
    if (controller.signal.aborted) {
      // A second Ctrl-C: stop now. Files are replaced atomically, so none is left half-written;
      // 'exit' listeners still run (the run's lock is released).
      process.stderr.write('\nStopped at once (second Ctrl-C).\n');
      process.exit(130);
    }
    controller.abort();
    process.stderr.write(
      '\nStopping after this step, then saving a checkpoint (Ctrl-C again to quit at once)...\n',
    );
  };
  process.on('SIGINT', onSigint);
  try {
    process.exitCode = await runCli(argv, ctx);
  } finally {
    process.off('SIGINT', onSigint);
  }
}
