/** The Node-only native kernel path (onnxruntime-node); never imported by the browser entry. */
export {
  enableNativeKernels,
  disableNativeKernels,
  nativeKernelStatus,
  nativeKernelOptions,
  NATIVE_KERNEL_NAMES,
  STEP_GRAPH_MODES,
  type StepGraphMode,
  type NativeKernelOptions,
  type NativeKernelStatus,
} from './enable.js';
export { useFastestBackend, type FastestBackend } from './fastest.js';
export {
  DEFAULT_THREADS,
  AUTO_THREADS_CAP,
  autoThreads,
  defaultThreads,
  type ThreadCount,
} from './threads.js';
export {
  enableStepGraphs,
  disableStepGraphs,
  stepGraphsStatus,
  type StepGraphsStatus,
} from './step-graph/enable.js';
