/**
 * enableStepGraphs(): AdaHessian's minimize on the cpu backend takes its loss, gradients and
 * Hessian diagonal from a replayed ONNX graph once a step's shape has been seen twice (see
 * step-graph.ts), and op by op otherwise; with `firstOrder`, TF.js's own optimizers' minimize
 * takes its loss and gradients the same way. Off: everything as before.
 * enableNativeKernels() calls it (its `stepGraphs` option: 'all' is firstOrder: true).
 */
import * as tf from '@tensorflow/tfjs';
import { loadOnnxRuntime, onnxRuntimeUnavailableReason } from '../onnx-runtime.js';
import { installStepGraphProvider, type StepGraphProvider } from './hook.js';
import { CompiledSteps } from './hutchinson-step.js';
import { recycledTensor, takeArray } from '../recycled-arrays.js';
import type { StepGraphOptions, StepGraphStatus } from './step-graph.js';

export interface StepGraphsStatus {
  enabled: boolean;
  /** TF.js's own optimizers' gradients replayed too (enableStepGraphs' firstOrder). */
  firstOrder: boolean;
  reason: string;
  /** Summed over every optimizer's compiled steps since enabling. */
  replays: number;
  opByOp: number;
  compiled: number;
  compileMs: number;
  /** Milliseconds of replays spent in the stubbed forward pass and in ONNX Runtime. */
  stubMs: number;
  graphMs: number;
  /** Step graphs opened again with ONNX Runtime's arena because their runs faulted (arena.ts). */
  arenaReopened: number;
  lastReason: string;
  /**
   * One line per compiled step that stopped trying (StepGraphStatus.gaveUp), naming the step:
   * e.g. "AdaHessian's step with the Hessian diagonal runs op by op from now on (not compiled: ...)".
   */
  gaveUp: string[];
}

interface State {
  firstOrder: boolean;
  owners: WeakMap<object, CompiledSteps>;
  all: Set<CompiledSteps>;
  status: () => StepGraphsStatus;
  uninstall: () => void;
}

let state: State | null = null;

/** Installs the step graphs for AdaHessian's minimize; returns whether it could. */
export function enableStepGraphs(
  options: StepGraphOptions & {
    /**
     * Also TF.js's own optimizers (tf.train.adam, sgd, ..., AdamW): their minimize's gradients
     * from a replayed graph, agreeing with TF.js's to float32 rounding (default false here:
     * they stay bit for bit TF.js's; enableNativeKernels() turns it on unless told
     * stepGraphs: 'adahessian').
     */
    firstOrder?: boolean;
  } = {},
): StepGraphsStatus {
  disableStepGraphs();
  if (loadOnnxRuntime() == null) {
    return { ...emptyStatus(), reason: onnxRuntimeUnavailableReason() };
  }
  const made = createStepGraphProvider(options);
  const uninstall = installStepGraphProvider(made.provider);
  const unpatch = options.firstOrder === true ? patchComputeGradients(made.provider) : () => {};
  state = {
    ...made,
    firstOrder: options.firstOrder === true,
    uninstall: () => {
      unpatch();
      uninstall();
    },
  };
  return stepGraphsStatus();
}

type ComputeGradients = (
  this: tf.Optimizer,
  f: () => tf.Scalar,
  varList?: tf.Variable[],
) => { value: tf.Scalar; grads: tf.NamedTensorMap };

/**
 * tf.Optimizer's computeGradients (what its minimize calls; AdaHessian has its own minimize)
 * through the compiled gradient step on cpu; returns how to put the original back.
 */
function patchComputeGradients(provider: StepGraphProvider): () => void {
  const proto = tf.Optimizer.prototype as unknown as { computeGradients: ComputeGradients };
  const original = proto.computeGradients;
  proto.computeGradients = function (f, varList) {
    if (tf.getBackend() !== 'cpu') return original.call(this, f, varList);
    // As tf.variableGrads: the trainable variables when none are named.
    const vars =
      varList ??
      Object.values(
        (tf.engine() as unknown as { registeredVariables: Record<string, tf.Variable> })
          .registeredVariables,
      ).filter((v) => v.trainable);
    const r = provider.gradient(this, f, vars);
    if (r == null) return original.call(this, f, varList);
    const grads: tf.NamedTensorMap = {};
    vars.forEach((v, i) => {
      if (r.grads[i] != null) grads[v.name] = r.grads[i];
    });
    return { value: r.loss, grads };
  };
  return () => {
    proto.computeGradients = original;
  };
}

/**
 * A provider not yet installed (a benchmark installs it around the calls it times), its
 * compiled steps by owner, and their status.
 */
export function createStepGraphProvider(options: StepGraphOptions = {}): {
  provider: StepGraphProvider;
  owners: WeakMap<object, CompiledSteps>;
  all: Set<CompiledSteps>;
  status: () => StepGraphsStatus;
} {
  const owners = new WeakMap<object, CompiledSteps>();
  const all = new Set<CompiledSteps>();
  /** The counters of steps whose optimizer is gone (the status keeps counting them). */
  const retired: StepGraphStatus[] = [];
  // An optimizer that is gone frees its graphs (ONNX Runtime sessions, ~20 MB for a small
  // transformer's pair): a sweep makes one optimizer per run, and `all` would keep them all.
  const gone = new FinalizationRegistry<CompiledSteps>((steps) => {
    if (!all.delete(steps)) return;
    retired.push({ ...steps.hutchinson.status }, { ...steps.gradient.status });
    steps.dispose();
  });
  const stepsFor = (owner: object, vars: tf.Variable[]): CompiledSteps | null => {
    // Values are read from the cpu backend's arrays; other backends stay op by op.
    if (tf.getBackend() !== 'cpu') return null;
    let steps = owners.get(owner);
    if (steps == null || !sameVars(steps.vars, vars)) {
      steps?.dispose();
      if (steps != null) all.delete(steps);
      steps = new CompiledSteps(vars, options);
      owners.set(owner, steps);
      all.add(steps);
      gone.register(owner, steps);
    }
    return steps;
  };
  const provider: StepGraphProvider = {
    hutchinson(owner, f, vars, probes) {
      const steps = stepsFor(owner, vars);
      if (steps == null) return null;
      const r = steps.hutchinsonStep(f, probes);
      const connected = r.connected ?? vars.map(() => true);
      return {
        loss: r.loss,
        grads: r.grads.map((g, i) => (connected[i] ? g : (g.dispose(), null))),
        diagonal: r.diagonal.map((d, i) => (connected[i] ? d : (d.dispose(), null))),
      };
    },
    gradient(owner, f, vars) {
      const steps = stepsFor(owner, vars);
      if (steps == null) return null;
      const r = steps.gradientStep(f);
      return { loss: r.loss, grads: r.grads, diagonal: null };
    },
    probeTensor(shape, fill) {
      const values = takeArray(shape.reduce((a, b) => a * b, 1));
      fill(values);
      return recycledTensor(values, shape);
    },
  };
  const status = () => statusOf([...retired, ...partsOf(all)]);
  return { provider, owners, all, status };
}

export function disableStepGraphs(): void {
  if (state == null) return;
  state.uninstall();
  for (const steps of state.all) steps.dispose();
  state = null;
}

export function stepGraphsStatus(): StepGraphsStatus {
  if (state == null) return { ...emptyStatus(), reason: 'enableStepGraphs() has not been called.' };
  return { ...state.status(), firstOrder: state.firstOrder };
}

function partsOf(all: Set<CompiledSteps>): StepGraphStatus[] {
  return [...all].flatMap((s) => [s.hutchinson.status, s.gradient.status]);
}

function statusOf(parts: StepGraphStatus[]): StepGraphsStatus {
  const sum = (
    k: 'replays' | 'opByOp' | 'compiled' | 'compileMs' | 'stubMs' | 'graphMs' | 'arenaReopened',
  ) => parts.reduce((a, p) => a + p[k], 0);
  return {
    enabled: true,
    firstOrder: false,
    reason: '',
    replays: sum('replays'),
    opByOp: sum('opByOp'),
    compiled: sum('compiled'),
    compileMs: sum('compileMs'),
    stubMs: sum('stubMs'),
    graphMs: sum('graphMs'),
    arenaReopened: sum('arenaReopened'),
    lastReason:
      parts
        .map((p) => p.lastReason)
        .filter(Boolean)
        .at(-1) ?? '',
    // parts come in pairs, one pair per CompiledSteps: the Hessian step's, the gradient's.
    gaveUp: parts.flatMap((p, i) =>
      p.gaveUp == null
        ? []
        : [
            `${i % 2 === 0 ? "AdaHessian's step with the Hessian diagonal" : 'the gradient step'} ${p.gaveUp}`,
          ],
    ),
  };
}

function emptyStatus(): StepGraphsStatus {
  return {
    enabled: false,
    firstOrder: false,
    reason: '',
    replays: 0,
    opByOp: 0,
    compiled: 0,
    compileMs: 0,
    stubMs: 0,
    graphMs: 0,
    arenaReopened: 0,
    lastReason: '',
    gaveUp: [],
  };
}

function sameVars(a: readonly tf.Variable[], b: readonly tf.Variable[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
