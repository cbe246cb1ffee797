/** What every command needs from its surroundings: where to write, decided from its flags. */
import { memoryIo, processIo, type CliIo } from './output.js';
import type { OutputFlags } from './common-options.js';

export interface CliContext {
  io(flags: OutputFlags): CliIo;
  /** Set by a command to the exit code it wants (e.g. 130 after Ctrl-C); default 0. */
  exitCode: number;
  /** Aborted on SIGINT while a command runs (the process entry point wires this). */
  signal?: AbortSignal;
  /** The name of the command running (set as it starts), e.g. 'train'. */
  command?: string;
}

export function processContext(signal?: AbortSignal): CliContext {
  return { io: (flags) => processIo(flags), exitCode: 0, signal };
}

/** A context that collects all output in memory (tests, programs embedding the CLI). */
export function memoryContext(signal?: AbortSignal): CliContext & { out(): string; err(): string } {
  const mem = memoryIo();
  return {
    io: (flags) => ({ ...mem, json: flags.json ?? false, quiet: flags.quiet ?? false }),
    exitCode: 0,
    signal,
    out: mem.out,
    err: mem.err,
  };
}
