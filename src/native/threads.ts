/**
 * How many ONNX Runtime intra-op threads the native kernels and step graphs run on when nobody
 * says (enableNativeKernels without `threads`, the CLI without --threads): decided here, once.
 *
 * - DEFAULT_THREADS: 'auto' follows the machine, os.availableParallelism() capped at
 *   AUTO_THREADS_CAP. Set it to 1 to make one thread the default again (library and CLI).
 * - ADAHESSIAN_THREADS=n|auto in the environment overrides the default (not an explicit
 *   `threads` / --threads). The test script sets 1 (package.json), so the test files, run one
 *   after the other on shared CI cores, keep the one-thread sessions they were written on;
 *   test/cli/threads-default.test.ts covers 'auto'.
 *
 * Why the cap is 4: a step graph's nodes are small (the small CNN's AdaHessian graph: ~700
 * nodes in ~60 ms, most under 0.5 ms), and its largest products are memory-bound (the
 * per-tap filter gradients gained nothing from a second thread, docs/PERFORMANCE.md, ninth
 * session); each session also keeps its own pool of threads - 1 sleeping threads, and the
 * op-by-op kernels cache up to 256 sessions. More than two threads was never measured here
 * (a 2-core machine): 4 bounds what an untested count can cost on a big machine.
 *
 * More than one thread rounds differently (row-blocked sums, the embedding gradient as one
 * product: src/native/step-graph/translate.ts), so results pinned to one thread
 * (scripts/results/run-all.ts) ask for 1 explicitly.
 */
import { availableParallelism } from 'node:os';

/** The default when nobody says: 'auto' (the machine's cores, capped) or a fixed count. */
export const DEFAULT_THREADS: number | 'auto' = 'auto';

/** 'auto' takes at most this many threads (see the header). */
export const AUTO_THREADS_CAP = 4;

/**
 * The most threads a caller may ask for: each ONNX Runtime session starts that many threads
 * (100,000 did not open a session within a minute; 5,000 took 9 s), far past any gain.
 */
export const MAX_THREADS = 256;

/** The environment variable that overrides the default: a positive integer or 'auto'. */
export const THREADS_ENV = 'ADAHESSIAN_THREADS';

/** A thread count as callers give it: a positive integer, or 'auto' (see autoThreads). */
export type ThreadCount = number | 'auto';

/** 'auto': the machine's logical processors, at most AUTO_THREADS_CAP. */
export function autoThreads(): number {
  return Math.max(1, Math.min(availableParallelism(), AUTO_THREADS_CAP));
}

/**
 * The thread count when none is given: ADAHESSIAN_THREADS if set, else DEFAULT_THREADS,
 * resolved to a number. A nonsense ADAHESSIAN_THREADS throws one line naming it.
 */
export function defaultThreads(): number {
  const env = process.env[THREADS_ENV];
  if (env === undefined || env === '') return resolveThreads(DEFAULT_THREADS);
  const value = env.trim() === 'auto' ? 'auto' : /^\d+$/.test(env.trim()) ? Number(env) : NaN;
  if (threadCountProblem(value) !== '') {
    throw new Error(
      `${THREADS_ENV}='${env}': expected a positive integer up to ${MAX_THREADS}, or 'auto'.`,
    );
  }
  return resolveThreads(value);
}

/** A given count as a number: undefined is the default, 'auto' autoThreads(). Not checked. */
export function resolveThreads(threads: ThreadCount | undefined): number {
  if (threads === undefined) return defaultThreads();
  return threads === 'auto' ? autoThreads() : threads;
}

/** Why `threads` is not a count ONNX Runtime can be given ('' when it is). */
export function threadCountProblem(threads: unknown): string {
  if (threads === 'auto') return '';
  if (typeof threads !== 'number' || !Number.isInteger(threads) || threads < 1) {
    return `must be a positive integer or 'auto'`;
  }
  if (threads > MAX_THREADS) {
    return `is more than ${MAX_THREADS}, the most ONNX Runtime is given (each session starts that many threads)`;
  }
  return '';
}

/**
 * ONNX Runtime's session.intra_op.allow_spinning for every session we open: '0', so that idle
 * pool threads sleep instead of spinning, since the JS thread runs the small ops between calls
 * and the demo shares its machine (docs/PERFORMANCE.md, eleventh session, engineer D: spinning
 * cost CPU and gained no wall time). ADAHESSIAN_ORT_SPINNING=1 turns it on, for A/Bs
 * (bench/speed/threads.ts --b-env ADAHESSIAN_ORT_SPINNING=1).
 */
export function ortSpinning(): '0' | '1' {
  return process.env['ADAHESSIAN_ORT_SPINNING'] === '1' ? '1' : '0';
}
