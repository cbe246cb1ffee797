/**
 * Progress of long work (training steps, benchmark rounds): a redrawn bar with loss, accuracy,
 * steps per second and ETA on a terminal; otherwise (a pipe, a log file, CI) a plain line now
 * and then, so logs stay readable. Nothing with --quiet.
 */
import cliProgress from 'cli-progress';
import type { CliIo } from './output.js';

export interface ProgressValues {
  loss?: number;
  /** In [0, 1]. */
  accuracy?: number;
}

export interface Progress {
  /** `done` units finished so far (of the total given at the start). */
  update(done: number, values?: ProgressValues): void;
  /** Ends the bar (or writes the final line). */
  stop(): void;
}

export interface ProgressOptions {
  label: string;
  total: number;
  /** What is counted, singular (default 'step'). */
  unit?: string;
  /** Seconds between lines when not on a terminal (default 15). */
  lineInterval?: number;
}

export function startProgress(io: CliIo, options: ProgressOptions): Progress {
  if (io.quiet || io.json) return { update: () => undefined, stop: () => undefined };
  return io.interactive ? barProgress(io, options) : lineProgress(io, options);
}

function rateAndEta(start: number, done: number, total: number): { rate: number; eta: number } {
  const seconds = (performance.now() - start) / 1000;
  const rate = seconds > 0 ? done / seconds : 0;
  return { rate, eta: rate > 0 ? (total - done) / rate : Infinity };
}

function formatValues(values: ProgressValues): string {
  const parts: string[] = [];
  if (values.loss !== undefined) parts.push(`loss ${values.loss.toFixed(4)}`);
  if (values.accuracy !== undefined) parts.push(`acc ${(values.accuracy * 100).toFixed(1)}%`);
  return parts.join('  ');
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function barProgress(io: CliIo, options: ProgressOptions): Progress {
  const unit = options.unit ?? 'step';
  const start = performance.now();
  const bar = new cliProgress.SingleBar({
    format: `${options.label} {bar} {value}/{total} ${unit}s | {values} | {rate} ${unit}s/s | ETA {etaText}`,
    stream: io.stderr as NodeJS.WritableStream,
    hideCursor: true,
    clearOnComplete: false,
    barsize: 24,
    fps: 5,
  });
  bar.start(options.total, 0, { values: '', rate: '0.0', etaText: '?' });
  return {
    update(done, values = {}) {
      const { rate, eta } = rateAndEta(start, done, options.total);
      bar.update(done, {
        values: formatValues(values),
        rate: rate.toFixed(rate < 10 ? 2 : 1),
        etaText: formatDuration(eta),
      });
    },
    stop() {
      bar.stop();
    },
  };
}

function lineProgress(io: CliIo, options: ProgressOptions): Progress {
  const unit = options.unit ?? 'step';
  const interval = (options.lineInterval ?? 15) * 1000;
  const start = performance.now();
  let lastLine = start;
  let last: { done: number; values: ProgressValues } = { done: 0, values: {} };
  const write = (done: number, values: ProgressValues) => {
    const { rate, eta } = rateAndEta(start, done, options.total);
    const fields = [
      `${options.label} ${done}/${options.total} ${unit}s`,
      formatValues(values),
      `${rate.toFixed(2)} ${unit}s/s`,
      done < options.total
        ? `ETA ${formatDuration(eta)}`
        : `took ${formatDuration((performance.now() - start) / 1000)}`,
    ].filter((f) => f !== '');
    io.stderr.write(`${fields.join('  ')}\n`);
  };
  return {
    update(done, values = {}) {
      last = { done, values };
      const now = performance.now();
      if (now - lastLine >= interval && done < options.total) {
        lastLine = now;
        write(done, values);
      }
    },
    stop() {
      write(last.done, last.values);
    },
  };
}
