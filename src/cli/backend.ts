/** Choosing the TF.js backend (and optionally the native kernels) for a command. */
import * as tf from '@tensorflow/tfjs';
import { BACKENDS, useBackend, type BackendName } from '../backends.js';
import {
  disableNativeKernels,
  enableNativeKernels,
  nativeKernelStatus,
  useFastestBackend,
  type NativeKernelOptions,
} from '../native/index.js';
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
}

/**
 * Without `backend`: the fastest path available, cpu with the native kernels (src/native) when
 * onnxruntime-node loads, else wasm with one note saying why (`native: false` goes straight to
 * wasm; `native: true` insists on the native kernels). With `backend`: that backend, the native
 * kernels turned on (`true`), off (`false`) or left as they are (undefined). `stepGraphs`
 * (--step-graphs) chooses the steps replayed as ONNX graphs wherever the native kernels are on
 * for cpu (undefined: the native kernels' default, 'all', or what is on already). Errors say what
 * is missing.
 */
export async function prepareBackend(
  backend: BackendName | undefined,
  native?: boolean,
  io?: CliIo,
  stepGraphs?: StepGraphChoice,
): Promise<BackendChoice> {
  if (stepGraphs !== undefined && !STEP_GRAPH_CHOICES.includes(stepGraphs)) {
    throw new CliUsageError(
      `--step-graphs '${String(stepGraphs)}' is unknown; expected one of ${STEP_GRAPH_CHOICES.join(', ')}.`,
    );
  }
  const refuse = (where: string) =>
    new CliUsageError(
      `--step-graphs ${stepGraphs}: step graphs need the cpu backend with the native kernels, and this command runs ${where}; drop --step-graphs or give --step-graphs off.`,
    );
  const wanted = stepGraphs !== undefined && stepGraphs !== 'off';
  if (wanted && native === false) throw refuse('without them (--no-native)');
  if (wanted && backend !== undefined && backend !== 'cpu') throw refuse(`on ${backend}`);
  const choice = await preparePath(backend, native, io, stepGraphs);
  if (wanted && choice.stepGraphs !== stepGraphs) {
    throw refuse(`on ${choice.backend}${choice.native ? '' : ' without them'}`);
  }
  return choice;
}

async function preparePath(
  backend: BackendName | undefined,
  native: boolean | undefined,
  io: CliIo | undefined,
  stepGraphs: StepGraphChoice | undefined,
): Promise<BackendChoice> {
  if (backend === undefined) {
    if (native === false) return preparePath('wasm', false, undefined, stepGraphs);
    if (native === true) return preparePath('cpu', true, undefined, stepGraphs);
    const fastest = await useFastestBackend(stepGraphOption(stepGraphs));
    if (!fastest.native && io !== undefined) {
      note(io, `Running on wasm, without the native kernels: ${fastest.reason}`);
    }
    if (fastest.native) setStepGraphs(stepGraphs);
    return { backend: fastest.backend, native: fastest.native, stepGraphs: stepGraphsOn('cpu') };
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
    const status = enableNativeKernels({ backends: [backend], ...stepGraphOption(stepGraphs) });
    if (!status.enabled) throw new CliUsageError(`--native: ${status.reason}`);
    return { backend, native: true, stepGraphs: stepGraphsOn(backend) };
  }
  if (native === false && current.enabled) disableNativeKernels();
  const on = native === false ? false : nativeHere;
  if (on) setStepGraphs(stepGraphs);
  return { backend, native: on, stepGraphs: stepGraphsOn(backend) };
}

/** enableNativeKernels' option for a --step-graphs value (none: its default, 'all'). */
function stepGraphOption(choice: StepGraphChoice | undefined): NativeKernelOptions {
  if (choice === undefined) return {};
  return { stepGraphs: choice === 'off' ? false : choice };
}

/** Re-enables the native kernels already on when they replay other steps than `choice` says. */
function setStepGraphs(choice: StepGraphChoice | undefined): void {
  const current = nativeKernelStatus();
  if (choice === undefined || !current.enabled || (current.stepGraphs || 'off') === choice) return;
  // Step graphs are installed for cpu only: another backend has none to change.
  if (!current.backends.includes('cpu')) return;
  enableNativeKernels({
    backends: current.backends,
    threads: current.threads,
    ...stepGraphOption(choice),
  });
}

/** The steps replayed now, on `backend`. */
function stepGraphsOn(backend: BackendName): StepGraphChoice {
  const status = nativeKernelStatus();
  if (backend !== 'cpu' || !status.enabled || !status.backends.includes('cpu')) return 'off';
  return status.stepGraphs || 'off';
}
