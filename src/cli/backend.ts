/** Choosing the TF.js backend (and optionally the native kernels) for a command. */
import * as tf from '@tensorflow/tfjs';
import { BACKENDS, useBackend, type BackendName } from '../backends.js';
import {
  disableNativeKernels,
  enableNativeKernels,
  nativeKernelOptions,
  nativeKernelStatus,
  useFastestBackend,
  type NativeKernelOptions,
} from '../native/index.js';
import { onnxRuntimeUnavailableReason } from '../native/onnx-runtime.js';
import {
  AUTO_THREADS_CAP,
  autoThreads,
  DEFAULT_THREADS,
  defaultThreads,
  threadCountProblem,
  THREADS_ENV,
} from '../native/threads.js';
import { CliUsageError } from './errors.js';
import { note, type CliIo } from './output.js';

export const CLI_BACKENDS = BACKENDS;

/**
 * --step-graphs: which training steps replay as one ONNX graph (src/native/step-graph/): 'all'
 * (the default with the native kernels), 'adahessian' (AdaHessian's only; TF.js's optimizers
 * keep TF.js's gradients bit for bit), 'off'. They need cpu with the native kernels.
 */
export const STEP_GRAPH_CHOICES = ['all', 'adahessian', 'off'] as const;
export type StepGraphChoice = (typeof STEP_GRAPH_CHOICES)[number];

/** The path a command runs on. */
export interface BackendChoice {
  backend: BackendName;
  native: boolean;
  /** Which steps replay as ONNX graphs ('off' wherever the native kernels are off or not on cpu). */
  stepGraphs: StepGraphChoice;
  /**
   * ONNX Runtime's intra-op threads for the native kernels and step graphs, as run (--threads,
   * else the default of src/native/threads.ts resolved to a number; null where the native
   * kernels are off). More than one rounds differently: see src/native/step-graph/translate.ts,
   * UnsortedSegmentSum.
   */
  threads: number | null;
}

/**
 * Without `backend`: the fastest path available, cpu with the native kernels (src/native) when
 * onnxruntime-node loads, else wasm with one note saying why (`native: false` goes straight to
 * wasm; `native: true` insists on the native kernels). With `backend`: that backend, the native
 * kernels turned on (`true`), off (`false`) or left as they are (undefined). `stepGraphs`
 * (--step-graphs) chooses the steps replayed as ONNX graphs wherever the native kernels are on
 * for cpu (undefined: the native kernels' default, 'all', or what is on already); `threads`
 * (--threads), ONNX Runtime's threads wherever the native kernels are on (undefined: the default
 * of src/native/threads.ts, or what is on already). Errors say what is missing.
 */
export async function prepareBackend(
  backend: BackendName | undefined,
  native?: boolean,
  io?: CliIo,
  stepGraphs?: StepGraphChoice,
  threads?: number,
): Promise<BackendChoice> {
  if (stepGraphs !== undefined && !STEP_GRAPH_CHOICES.includes(stepGraphs)) {
    throw new CliUsageError(
      `--step-graphs '${String(stepGraphs)}' is unknown; expected one of ${STEP_GRAPH_CHOICES.join(', ')}.`,
    );
  }
  checkThreads(threads);
  // A nonsense ADAHESSIAN_THREADS is one line here, before anything is set up (where native
  // kernels may run: without them it would be ignored, like --threads is refused).
  if (threads === undefined && native !== false && backend !== 'tensorflow') {
    try {
      defaultThreads();
    } catch (e) {
      throw new CliUsageError((e as Error).message);
    }
  }
  // ONNX Runtime's threads serve the native kernels only: without them, --threads would be ignored.
  // `orNative`: the command left the native kernels to us, so --native is a way out where
  // onnxruntime-node loads; where it does not, the line says why instead.
  const refuseThreads = (where: string, orNative = false) => {
    const missing = orNative ? onnxRuntimeUnavailableReason() : '';
    const fix =
      missing !== ''
        ? `drop --threads. The native kernels are not available: ${missing}`
        : `drop --threads${orNative ? ' or add --native' : ''}.`;
    return new CliUsageError(
      `--threads ${threads}: ONNX Runtime's threads serve the native kernels, and this command runs ${where}; ${fix}`,
    );
  };
  if (threads !== undefined && native === false) throw refuseThreads('without them (--no-native)');
  if (threads !== undefined && backend === 'tensorflow') throw refuseThreads('on tensorflow');
  // Without onnxruntime-node the path has no native kernels: refused before the fallback's note.
  if (threads !== undefined && native === undefined && onnxRuntimeUnavailableReason() !== '') {
    throw refuseThreads(`on ${backend ?? 'wasm'} without them`, true);
  }
  const refuse = (where: string, why = '') =>
    new CliUsageError(
      `--step-graphs ${stepGraphs}: step graphs need the cpu backend with the native kernels, and this command runs ${where}; drop --step-graphs or give --step-graphs off.${why}`,
    );
  const wanted = stepGraphs !== undefined && stepGraphs !== 'off';
  if (wanted && native === false) throw refuse('without them (--no-native)');
  if (wanted && backend !== undefined && backend !== 'cpu') throw refuse(`on ${backend}`);
  // Without onnxruntime-node: refused before the fallback's note, one line that says why.
  const missing = wanted && native === undefined ? onnxRuntimeUnavailableReason() : '';
  if (missing !== '') {
    throw refuse(
      `on ${backend ?? 'wasm'} without them`,
      ` The native kernels are not available: ${missing}`,
    );
  }
  const choice = await preparePath(backend, native, io, stepGraphs, threads);
  if (wanted && choice.stepGraphs !== stepGraphs) {
    throw refuse(`on ${choice.backend}${choice.native ? '' : ' without them'}`);
  }
  if (threads !== undefined && !choice.native) {
    throw refuseThreads(`on ${choice.backend} without them`, native === undefined);
  }
  return choice;
}

/**
 * The path in words, as commands' first lines and tables name it: "cpu + native kernels, step
 * graphs all, 1 thread", or the backend alone without the native kernels.
 */
export function pathText(path: Omit<BackendChoice, 'backend'> & { backend: string }): string {
  if (!path.native) return path.backend;
  return `${path.backend} + native kernels, step graphs ${path.stepGraphs}, ${threadsText(path.threads ?? 1)}`;
}

/** "1 thread", "2 threads". */
export function threadsText(threads: number): string {
  return threads === 1 ? '1 thread' : `${threads} threads`;
}

/**
 * --threads as the library gets it (commander's parser already took a positive integer up to
 * MAX_THREADS, or 'auto' as the number it means here).
 */
export function checkThreads(threads: unknown): void {
  if (threads === undefined) return;
  if (typeof threads !== 'number' || !Number.isInteger(threads) || threads < 1) {
    throw new CliUsageError(`--threads must be a positive integer, got ${String(threads)}.`);
  }
  const problem = threadCountProblem(threads);
  if (problem !== '') throw new CliUsageError(`--threads ${threads} ${problem}.`);
}

/** The default thread count in words, for --threads' help. */
export function defaultThreadsText(): string {
  const env = process.env[THREADS_ENV];
  if (env !== undefined && env !== '') return `${THREADS_ENV}=${env}`;
  if (DEFAULT_THREADS !== 'auto') return String(DEFAULT_THREADS);
  return `auto, the machine's logical processors up to ${AUTO_THREADS_CAP}: ${autoThreads()} here`;
}

async function preparePath(
  backend: BackendName | undefined,
  native: boolean | undefined,
  io: CliIo | undefined,
  stepGraphs: StepGraphChoice | undefined,
  threads: number | undefined,
): Promise<BackendChoice> {
  if (backend === undefined) {
    if (native === false) return preparePath('wasm', false, undefined, stepGraphs, threads);
    if (native === true) return preparePath('cpu', true, undefined, stepGraphs, threads);
    const fastest = await useFastestBackend({
      ...stepGraphOption(stepGraphs),
      ...(threads !== undefined ? { threads } : {}),
    });
    if (!fastest.native && io !== undefined) {
      note(io, `Running on wasm, without the native kernels: ${fastest.reason}`);
    }
    if (fastest.native) setNativeOptions(stepGraphs, threads);
    return pathOn(fastest.backend, fastest.native);
  }
  if (!BACKENDS.includes(backend)) {
    throw new CliUsageError(
      `--backend '${backend}' is unknown; expected one of ${BACKENDS.join(', ')}.`,
    );
  }
  if (tf.getBackend() !== backend) {
    try {
      await useBackend(backend);
    } catch (e) {
      throw new CliUsageError(`--backend ${backend}: ${(e as Error).message}`);
    }
  }
  const current = nativeKernelStatus();
  const nativeHere = current.enabled && current.backends.includes(backend);
  if (native === true && !nativeHere) {
    if (backend === 'tensorflow') {
      throw new CliUsageError(
        '--native applies to the cpu and wasm backends (tensorflow is native already).',
      );
    }
    // Kernels on for another backend: their other options (pool, cache, ...) are kept.
    const status = enableNativeKernels({
      ...nativeKernelOptions(),
      backends: [backend],
      ...stepGraphOption(stepGraphs),
      ...(threads !== undefined ? { threads } : {}),
    });
    if (!status.enabled) throw new CliUsageError(`--native: ${status.reason}`);
    return pathOn(backend, true);
  }
  if (native === false && current.enabled) disableNativeKernels();
  const on = native === false ? false : nativeHere;
  if (on) setNativeOptions(stepGraphs, threads);
  return pathOn(backend, on);
}

function pathOn(backend: BackendName, native: boolean): BackendChoice {
  return {
    backend,
    native,
    stepGraphs: stepGraphsOn(backend),
    threads: native ? nativeKernelStatus().threads : null,
  };
}

/** enableNativeKernels' option for a --step-graphs value (none: its default, 'all'). */
function stepGraphOption(choice: StepGraphChoice | undefined): NativeKernelOptions {
  if (choice === undefined) return {};
  return { stepGraphs: choice === 'off' ? false : choice };
}

/**
 * Re-enables the native kernels already on when they replay other steps than `stepGraphs` says,
 * or run on another number of threads than `threads` (undefined: as they are), keeping every
 * other option their caller gave enableNativeKernels (a library caller's pool, cache, arena...).
 */
function setNativeOptions(
  stepGraphs: StepGraphChoice | undefined,
  threads: number | undefined,
): void {
  const current = nativeKernelStatus();
  if (!current.enabled) return;
  const replayed = current.stepGraphs || 'off';
  // Step graphs are installed for cpu only: another backend has none to change.
  const graphsDiffer =
    stepGraphs !== undefined && replayed !== stepGraphs && current.backends.includes('cpu');
  const threadsDiffer = threads !== undefined && threads !== current.threads;
  if (!graphsDiffer && !threadsDiffer) return;
  enableNativeKernels({
    ...nativeKernelOptions(),
    ...(threadsDiffer ? { threads } : {}),
    ...(graphsDiffer ? stepGraphOption(stepGraphs) : {}),
  });
}

/** The steps replayed now, on `backend`. */
function stepGraphsOn(backend: BackendName): StepGraphChoice {
  const status = nativeKernelStatus();
  if (backend !== 'cpu' || !status.enabled || !status.backends.includes('cpu')) return 'off';
  return status.stepGraphs || 'off';
}
