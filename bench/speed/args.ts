/** `--name value` from the command line, or `fallback` when the flag is absent (benchmarks only). */
export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}
