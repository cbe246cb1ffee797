/** What every command needs from its surroundings: where to write, decided from its flags. */
import { processIo, type CliIo } from './output.js';
import type { OutputFlags } from './common-options.js';

export interface CliContext {
  io(flags: OutputFlags): CliIo;
  /** Set by a command to the exit code it wants (e.g. 130 after Ctrl-C); default 0. */
  exitCode: number;
  /** Aborted on SIGINT while a command runs (the process entry point wires this). */
  signal?: AbortSignal;
}

export function processContext(signal?: AbortSignal): CliContext {
  return { io: (flags) => processIo(flags), exitCode: 0, signal };
}
