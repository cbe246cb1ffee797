/**
 * Where the command line writes: results to stdout (one JSON document with --json), progress
 * and notes to stderr. Interactive progress bars only on a terminal; colour only on a
 * terminal and when NO_COLOR is unset (https://no-color.org).
 */

export interface TextSink {
  write(text: string): unknown;
}

export interface CliIo {
  stdout: TextSink;
  stderr: TextSink;
  /** stderr is a terminal that can redraw a line (progress bars). */
  interactive: boolean;
  /** ANSI colour allowed. */
  color: boolean;
  /** --json: stdout holds only the result document. */
  json: boolean;
  /** --quiet: no progress and no notes on stderr. */
  quiet: boolean;
}

/** The process's own streams, with interactivity and colour decided from them and the env. */
export function processIo(options: { json?: boolean; quiet?: boolean } = {}): CliIo {
  const tty = process.stderr.isTTY === true && process.env.TERM !== 'dumb';
  const noColor = process.env.NO_COLOR != null && process.env.NO_COLOR !== '';
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    interactive: tty && !process.env.CI,
    color: tty && process.stdout.isTTY === true && !noColor,
    json: options.json ?? false,
    quiet: options.quiet ?? false,
  };
}

/** An io that collects everything in strings (tests, library callers). */
export function memoryIo(options: Partial<Omit<CliIo, 'stdout' | 'stderr'>> = {}): CliIo & {
  out: () => string;
  err: () => string;
} {
  let out = '';
  let err = '';
  return {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    interactive: false,
    color: false,
    json: false,
    quiet: false,
    ...options,
    out: () => out,
    err: () => err,
  };
}

/** A note for the user on stderr (not with --quiet). */
export function note(io: CliIo, text: string): void {
  if (!io.quiet) io.stderr.write(`${text}\n`);
}

/** Human-readable result text on stdout (not with --json, where the JSON document is the result). */
export function say(io: CliIo, text: string): void {
  if (!io.json) io.stdout.write(`${text}\n`);
}

export function bold(io: CliIo, text: string): string {
  return io.color ? `\u001b[1m${text}\u001b[22m` : text;
}
