/**
 * Step graphs: a training step captured once and replayed as one ONNX graph.
 *
 * Why: a char-transformer AdaHessian step is ~3,800 TF.js kernel calls (forward, gradient and
 * the Hessian-vector sweep), most of them small; TF.js's per-call cost and its JS kernels
 * dominate, not the arithmetic. The tape has the same shape every step, so we record it once
 * and hand the whole step to ONNX Runtime, which then fuses and runs it as one call.
 *
 * How, per step (StepGraphCompiler.run):
 *   1. Capture (capture.ts). The step runs op by op while every registered kernel of the
 *      backend is wrapped: each call's kernel name, attributes, input and output shapes and
 *      dtypes, and where each input came from: an earlier call's output (matched by data id;
 *      a reshape shares its input's data id, so a value may be read under another shape), or
 *      an external tensor. Externals are made in JS during the step (`backend.write` is
 *      watched: scalars from gradient code, the attention mask), or existed before it: the
 *      variables and the batch, read by the loss function's forward pass, and the probes.
 *   2. Build (build.ts, translate.ts), at once. Each kernel call becomes ONNX nodes by the
 *      translation table; calls nothing returned depends on are dropped; identities are
 *      names. Tensors made in JS during the step, and small ones (<= 16 elements) that
 *      existed before it (tf.layers caches its scalars), are baked in as constants; the
 *      variables, the batch and the probes are graph inputs (the caller draws the probes, so
 *      random numbers never become constants). A kernel without a translation refuses the
 *      step with its name. ONNX Runtime compiles the graph (optimisation 'all' by default).
 *   3. Check and confirm. The new graph runs on the captured step's own inputs and must
 *      agree with op by op (`disagreement`) or it is refused; the step then returns the
 *      graph's values. The next step of that shape is captured again, with every kernel
 *      stubbed (capture.ts: no arithmetic, placeholders of the first recording's shapes, so
 *      op by op's memory never sits beside the graph's): only if the two recordings are
 *      identical (every call, data flow edge and constant value) is the graph confirmed for
 *      replay, and it computes that step; a constant that changed (a random mask made in JS)
 *      refuses it. A stubbed capture that cannot follow the first (another call, a value
 *      read) is undone (assignments restored, kept placeholders poisoned) and the step is
 *      captured op by op as before.
 *      From the first step of a shape on, every step takes the graph's values, so the
 *      rounding does not depend on when a run started (a resumed run matches one that was
 *      never interrupted).
 *   4. Replay. The loss function's forward pass is run once more with every kernel stubbed
 *      (no arithmetic: each call returns a placeholder of the recorded shape), which finds
 *      this step's batch tensors and variables exactly where the capture saw them, and checks
 *      the forward call by call (name, attributes, shapes, data flow, the baked constants'
 *      values). Any difference stops the stub and the step runs op by op (and is captured, so
 *      that a new shape gets its own graph). Then one ONNX Runtime call computes the
 *      returned tensors. After three captures in a row without a usable graph, a compiler
 *      stops recording (a model the table cannot take runs plain op by op).
 *   5. Assigned variables (batch norm's moving statistics; assign.ts). A variable the loss
 *      function assigns gets its new value as an extra graph output and its old one as a graph
 *      input; the stub checks that the same variables are assigned the same recorded values,
 *      and the replay assigns the graph's outputs after running it.
 *   6. Escaping tensors (escape.ts). A tensor the loss function makes that outlives the step
 *      (kept: train's count of correct predictions) is one more graph output, written into
 *      the stub's placeholder after the replay; a placeholder left alive that the graph does
 *      not compute runs the step op by op, and reading it throws. No kept placeholder is ever
 *      read as if it held values.
 *
 * Limits: the step's structure must not depend on tensor values (data-dependent control flow
 * that happened to agree over the two captures would replay the captured branch; the forward
 * check catches only what the forward pass does, and a forward pass that reads a value, e.g.
 * with dataSync, runs op by op); float32, int32 and bool only; one graph per
 * shape (kept: `maxGraphs`); results equal the op-by-op ones to float32 rounding, not bit for
 * bit (ONNX Runtime sums and fuses in another order).
 */
import * as tf from '@tensorflow/tfjs';
import { encodeOnnxModel } from '../onnx-model.js';
import { loadOnnxRuntime, onnxRuntimeUnavailableReason } from '../onnx-runtime.js';
import { ortSpinning } from '../threads.js';
import { keepsCommonSubexpressionElimination } from './cse.js';
import {
  record,
  StepGraphRefusal,
  StubMismatch,
  type Recording,
  type StepDtype,
  type StubPlan,
  type ValueRef,
} from './capture.js';
import { privateEngine } from '../../autodiff/engine.js';
import { buildStepGraph, type GraphOutput } from './build.js';
import {
  assignAll,
  watchCapturedAssignments,
  watchStubAssignments,
  type CapturedAssignment,
} from './assign.js';
import { aliveAfter, fillData, poison, watchMadeTensors, type Escape } from './escape.js';
import { interceptKernels, sameAttrs, sameShape } from './stub-kernels.js';
import { ArenaChoice, minorPageFaults } from './arena.js';
import {
  recycledTensor,
  recycledValues,
  takeResidentArray,
  type ResidentArrays,
} from '../recycled-arrays.js';

export interface StepGraphOptions {
  /** ONNX Runtime intra-op threads for the whole step (default 1). */
  threads?: number;
  /**
   * Where the float32 outputs' arrays come from when it has room (AdaHessian's: its SIMD
   * update then reads g and D in place; recycled-arrays.ts). Default: the recycled pool.
   */
  residentOutputs?: ResidentArrays | null;
  /** ONNX Runtime graph optimisation level (default 'all'). */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * ONNX Runtime's memory arena. Default (undefined): by the step's size, off for big steps
   * while their runs do not fault, else on (arena.ts). true / false: as given. Off, the graph's
   * tensors come from glibc's heap, reusing what the op-by-op capture left there.
   */
  memoryArena?: boolean;
  /**
   * ONNX Runtime's memory pattern (default off: with it, ResNet-20's AdaHessian step held one
   * more ~600 MB block, peak RSS 1.9 GB against 1.4 GB, for no measurable speed).
   */
  memoryPattern?: boolean;
  /** Layer norms' gradients by hand (build.ts; first-order graphs only). Default off. */
  layerNormGradients?: boolean;
  /** GELU's gradients by hand (build.ts, gelu-grad.ts; first-order graphs only). Default off. */
  geluGradients?: boolean;
  /** Products without their no-op Reshapes (build.ts; first-order graphs only). Default off. */
  elideMatMulReshapes?: boolean;
  /** Compiled graphs kept per compiler (default 4); the oldest is dropped beyond. */
  maxGraphs?: number;
  /** ONNX Runtime's per-node profile into files with this prefix (a benchmark's tool). */
  profilePrefix?: string;
  /** Told why a step ran op by op or was not compiled (default: nothing). */
  debug?: (reason: string) => void;
  /**
   * Called before a step is captured or replayed; what it returns, after. enableNativeKernels
   * passes its output pool's suspend: pooled arrays would stay beside the graph's own memory.
   */
  suspendOutputPool?: () => () => void;
}

/** What one step returns, op by op or replayed: tensors and a structural note. */
export interface StepResult<E> {
  outputs: tf.Tensor[];
  extra: E;
  replayed: boolean;
}

export interface StepGraphStatus {
  captures: number;
  /** Of `captures`, those recorded with every kernel stubbed (a graph's confirmation). */
  stubbedCaptures: number;
  compiled: number;
  replays: number;
  opByOp: number;
  /** Why the last step was not replayed, or a graph not built. */
  lastReason: string;
  /** Milliseconds spent building and compiling graphs, and the last graph's size. */
  compileMs: number;
  /** Milliseconds of replays spent in the stubbed forward pass and in ONNX Runtime. */
  stubMs: number;
  graphMs: number;
  lastGraphNodes: number;
  lastGraphCalls: number;
  /** Sessions opened again with ONNX Runtime's arena because their runs faulted (arena.ts). */
  arenaReopened: number;
  /** How close the last graph checked against op by op came to its tolerances (disagreement). */
  lastCheck: CheckMargin | null;
  /**
   * Set once GIVE_UP captures in a row gave no usable graph (the compiler stops capturing):
   * which steps now run op by op, and the last reason (the CLI says it once).
   */
  gaveUp: string | null;
}

/**
 * A check's margins: over the outputs, the largest ratio of the L2 error to its tolerance, and
 * of an element's error to the per-element tolerance (1 is the limit), with the outputs' indices.
 */
export interface CheckMargin {
  l2: number;
  l2Output: number;
  element: number;
  elementOutput: number;
}

interface OrtTensor {
  readonly data: unknown;
}
type OrtSession = {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  run(feeds: Record<string, OrtTensor>, fetches: Record<string, OrtTensor>, options: object): void;
  dispose(): void;
  endProfiling?(): string;
};

interface ReadBackend {
  readSync(dataId: object): unknown;
  /** The cpu backend's records (absent on other backends). */
  data?: { get(dataId: object): { values: unknown; dtype: string } | undefined };
  incRef(dataId: object): void;
  write(values: unknown, shape: number[], dtype: string): object;
}

/** A recording and what it returned (refs into it), with the step's structural extra. */
interface Capture<E> {
  recording: Recording;
  outputs: GraphOutput[];
  forward: { start: number; end: number };
  /** For each external: the probe it is (flat index), or -1. */
  probeOf: number[];
  extra: E;
  signature: string;
  /**
   * How many of `outputs` the step returns; then `assigned`'s new values (assign.ts), then
   * the tensors that escape the loss function (escape.ts).
   */
  returned: number;
  assigned: tf.Variable[];
  escapes: Escape[];
}

interface CompiledEntry<E> {
  capture: Capture<E>;
  session: OrtSession;
  inputExternals: number[];
  outputShapes: number[][];
  outputDtypes: StepDtype[];
  /** Per forward call: its attributes as JSON, for the stub's check. */
  attrsJson: string[];
  /** Replayed only once a second capture matched the one it was built from. */
  confirmed: boolean;
  /** Whether the session has ONNX Runtime's arena, and the watch that may turn it on. */
  arena: ArenaChoice;
  /** Opens the session again (with `arena`'s choice); null once nothing can change it. */
  reopen: (() => OrtSession) | null;
}

/** The body of a step: runs `forward` (the loss function, counted) once and returns tensors. */
export type StepBody<E> = (forward: () => tf.Scalar) => { outputs: tf.Tensor[]; extra: E };

class ForwardMismatch extends Error {}

/** Captures in a row without a usable graph after which a compiler stops trying. */
const GIVE_UP = 3;
/**
 * Captures, compiles and replays one kind of step (e.g. AdaHessian's gradient and Hutchinson
 * diagonal) for one list of variables. Not thread-safe, like TF.js.
 */
export class StepGraphCompiler<E> {
  private readonly entries: CompiledEntry<E>[] = [];
  private refused = new Set<string>();
  /** This step's variables: inputs however small (never baked in). */
  private variables: readonly tf.Tensor[] = [];
  /** Captures in a row that gave no graph; at GIVE_UP, this compiler stops capturing. */
  private fruitless = 0;
  readonly status: StepGraphStatus = {
    captures: 0,
    stubbedCaptures: 0,
    compiled: 0,
    replays: 0,
    opByOp: 0,
    lastReason: '',
    compileMs: 0,
    stubMs: 0,
    graphMs: 0,
    lastGraphNodes: 0,
    lastGraphCalls: 0,
    arenaReopened: 0,
    lastCheck: null,
    gaveUp: null,
  };

  constructor(private readonly options: StepGraphOptions = {}) {}

  /**
   * One step: its outputs replayed from a confirmed graph when this step's forward pass
   * matches one; else `body(f)` op by op, captured, and (when a graph of it exists or can be
   * built, and agrees with op by op) the graph's outputs for this step, so that every step of
   * one shape gets the graph's rounding from its first on (a resumed run matches an
   * uninterrupted one). `probes` are the step's random inputs (graph inputs).
   */
  run(
    f: () => tf.Scalar,
    probes: tf.Tensor[],
    body: StepBody<E>,
    variables: readonly tf.Tensor[] = [],
  ): StepResult<E> {
    this.variables = variables;
    if (this.fruitless >= GIVE_UP && !this.entries.some((e) => e.confirmed)) {
      // A model the step graphs cannot take (a kernel without a translation, random constants):
      // plain op by op from now on, without the cost of recording.
      this.status.opByOp++;
      const { outputs, extra } = body(f);
      return { outputs, extra, replayed: false };
    }
    const resume = this.options.suspendOutputPool?.() ?? (() => {});
    try {
      for (const entry of this.entries) {
        if (!entry.confirmed) continue;
        const t0 = performance.now();
        const stubbed = this.stubForward(entry, f);
        this.status.stubMs += performance.now() - t0;
        if (stubbed == null) continue;
        this.status.replays++;
        return {
          outputs: this.finish(entry, this.runGraph(entry, stubbed.feeds, probes), stubbed.fills),
          extra: entry.capture.extra,
          replayed: true,
        };
      }
      if (this.fruitless >= GIVE_UP) {
        this.status.opByOp++;
        const { outputs, extra } = body(f);
        return { outputs, extra, replayed: false };
      }
      return this.opByOp(f, probes, body);
    } finally {
      resume();
    }
  }

  dispose(): void {
    if (this.options.profilePrefix != null)
      for (const e of this.entries) e.session.endProfiling?.();
    for (const e of this.entries) e.session.dispose();
    this.entries.length = 0;
  }

  private note(reason: string): void {
    this.status.lastReason = reason;
    this.options.debug?.(reason);
  }

  private opByOp(f: () => tf.Scalar, probes: tf.Tensor[], body: StepBody<E>): StepResult<E> {
    this.status.opByOp++;
    if (loadOnnxRuntime() == null) {
      this.note(onnxRuntimeUnavailableReason());
      const { outputs, extra } = body(f);
      return { outputs, extra, replayed: false };
    }
    const confirmed = this.confirmStubbed(f, probes, body);
    if (confirmed != null) return confirmed;
    let captured: ReturnType<StepGraphCompiler<E>['capture']>;
    try {
      captured = this.capture(f, probes, body);
    } catch (e) {
      if (!(e instanceof Error)) throw e;
      // Any other error is the step's own (the loss function's: the plain run below throws it
      // again, and the caller sees it) or the capture's (a case it does not know): then the
      // step runs op by op as if there were no step graphs, rather than failing training.
      this.note(
        e instanceof StepGraphRefusal ? `not compiled: ${e.message}` : `capture failed: ${e}`,
      );
      this.gaveNothing();
      const known = e instanceof StepGraphRefusal ? e.stepResult : undefined;
      const { outputs, extra } = (known as ReturnType<StepBody<E>> | undefined) ?? body(f);
      return { outputs, extra, replayed: false };
    }
    const { result, capture, feeds, escaped } = captured;
    const entry = this.adopt(capture);
    if (entry != null) {
      const fromGraph = this.runGraph(entry, feeds, probes);
      // The assigned variables and the escaped tensors hold op by op's values; the graph's
      // replace them (a tensor that shares a batch's or variable's data is left as it is).
      const { differs, margin } = disagreement(fromGraph, [
        ...result.outputs,
        ...capture.assigned,
        ...escaped.map((e) => e.tensor),
      ]);
      this.status.lastCheck = margin;
      if (process.env['ADAHESSIAN_CHECK_MARGINS'] === '1') {
        // A debug hook (PERFORMANCE.md, tenth session, engineer D's second task).
        console.error(`step graph check: ${JSON.stringify(margin)}${differs ? ' refused' : ''}`);
      }
      if (differs == null) return this.graphInstead(entry, fromGraph, result, escaped);
      tf.dispose(fromGraph);
      this.drop(entry, `not compiled: the graph's ${differs} (against op by op)`);
    }
    this.gaveNothing();
    return { outputs: result.outputs, extra: result.extra, replayed: false };
  }

  /**
   * Step 3 without arithmetic: the step recorded with every kernel stubbed (capture.ts),
   * following a provisional graph's recording. When every call, data flow edge and constant
   * is the same (the same test a real second capture passes), the graph is confirmed and
   * computes this step; its first run, on the first capture's inputs, was already checked
   * against op by op. So a confirming step never holds op by op's memory beside the graph's
   * (ResNet-20: its peak was that step). Else null: the step is captured for real, as before,
   * with nothing of the stubbed attempt left (capture's undoStubbed).
   */
  private confirmStubbed(
    f: () => tf.Scalar,
    probes: tf.Tensor[],
    body: StepBody<E>,
  ): StepResult<E> | null {
    for (const entry of this.entries) {
      if (entry.confirmed) continue;
      let captured: ReturnType<StepGraphCompiler<E>['capture']>;
      try {
        captured = this.capture(f, probes, body, entry);
      } catch (e) {
        if (!(e instanceof StubMismatch)) throw e;
        this.note(`captured op by op: the stubbed capture differs (${e.message})`);
        continue;
      }
      const { result, capture, feeds, escaped, discard } = captured;
      if (this.adopt(capture) !== entry) {
        // A constant changed (adopt dropped the graph and said why): the step runs for real.
        discard();
        return null;
      }
      return this.graphInstead(entry, this.runGraph(entry, feeds, probes), result, escaped);
    }
    return null;
  }

  /**
   * A captured step (op by op, or stubbed) returning its graph's values rather than its own:
   * its outputs go, the graph's fill the assigned variables and escaped tensors (finish).
   */
  private graphInstead(
    entry: CompiledEntry<E>,
    fromGraph: tf.Tensor[],
    captured: { outputs: tf.Tensor[]; extra: E },
    escaped: { fill: object | null }[],
  ): StepResult<E> {
    tf.dispose(captured.outputs);
    this.fruitless = 0;
    return {
      outputs: this.finish(
        entry,
        fromGraph,
        escaped.map((e) => e.fill),
      ),
      extra: captured.extra,
      replayed: false,
    };
  }

  /**
   * The graph for this capture: a provisional one compiled now on first sight, confirmed when
   * a second capture is identical (every call, data flow edge and made constant); null when
   * it is refused.
   */
  private adopt(capture: Capture<E>): CompiledEntry<E> | null {
    if (this.refused.has(capture.signature)) return null;
    const entry = this.entries.find((e) => e.capture.signature === capture.signature);
    if (entry != null) {
      const changed = capture.recording.externals.findIndex(
        (ext, i) =>
          ext.values != null &&
          !sameValues(ext.values, entry.capture.recording.externals[i]!.values!),
      );
      if (changed >= 0) {
        const ext = capture.recording.externals[changed]!;
        this.drop(
          entry,
          `not compiled: a constant of the step ([${ext.shape}] ${ext.dtype}, made in JS or small) changed between steps`,
        );
        return null;
      }
      if (entry.confirmed) {
        this.note(
          'op by op: the compiled graph of this step did not replay (see the reason before)',
        );
      }
      entry.confirmed = true;
      return entry;
    }
    try {
      return this.compile(capture);
    } catch (e) {
      if (!(e instanceof Error)) throw e;
      this.refused.add(capture.signature);
      this.note(`not compiled: ${e.message}`);
      return null;
    }
  }

  private gaveNothing(): void {
    if (++this.fruitless === GIVE_UP) {
      const some = this.entries.some((e) => e.confirmed);
      this.status.gaveUp =
        `${some ? 'runs op by op for batch shapes without a graph' : 'runs op by op from now on'}` +
        ` (${this.status.lastReason})`;
      this.note(
        `${this.status.lastReason}; ${GIVE_UP} steps in a row gave no graph: op by op from now on`,
      );
    }
  }

  private drop(entry: CompiledEntry<E>, reason: string): void {
    this.refused.add(entry.capture.signature);
    this.entries.splice(this.entries.indexOf(entry), 1);
    entry.session.dispose();
    this.note(reason);
  }

  /**
   * Runs the step recorded (op by op; with `stubFor`, stubbed after that graph's recording,
   * throwing StubMismatch unless the recording and its constants are that graph's).
   */
  private capture(
    f: () => tf.Scalar,
    probes: tf.Tensor[],
    body: StepBody<E>,
    stubFor?: CompiledEntry<E>,
  ): {
    result: { outputs: tf.Tensor[]; extra: E };
    capture: Capture<E>;
    feeds: Map<number, unknown>;
    /** The escaping tensors, and the data to write the graph's values into (null: leave). */
    escaped: { tensor: tf.Tensor; fill: object | null }[];
    /** A stubbed capture's undoing, where it is not used (see undoStubbed). */
    discard: () => void;
  } {
    this.status.captures++;
    const plan: StubPlan | undefined =
      stubFor == null
        ? undefined
        : { from: stubFor.capture.recording, placeholders: new Set<object>() };
    if (plan != null) this.status.stubbedCaptures++;
    let forward: { start: number; end: number } | null = null;
    let forwardRuns = 0;
    let inForward = false;
    // Variables the loss function assigns (batch norm's moving statistics): assign.ts.
    const watched = watchCapturedAssignments(() => inForward);
    // Tensors the loss function makes: those alive after the step escape it (escape.ts).
    const madeInForward = watchMadeTensors(() => inForward);
    let forwardLoss: tf.Scalar | null = null;
    let recorded: ReturnType<typeof record<ReturnType<StepBody<E>>>> | null = null;
    let stubFailure: unknown = null;
    try {
      recorded = record(
        (count) =>
          body(() => {
            forwardRuns++;
            const start = count();
            inForward = true;
            try {
              const loss = f();
              forward = { start, end: count() };
              forwardLoss = loss;
              return loss;
            } finally {
              inForward = false;
            }
          }),
        plan,
      );
    } catch (e) {
      if (plan == null) throw e;
      stubFailure = e;
    } finally {
      watched.undo();
      madeInForward.undo();
    }
    if (recorded == null) {
      undoStubbed(watched.assignments, madeInForward.made, plan!.placeholders);
      throw asMismatch(stubFailure);
    }
    const { result, recording, refOf } = recorded;
    try {
      if (forwardRuns !== 1 || forward == null) {
        throw new StepGraphRefusal(`the loss function ran ${forwardRuns} times in one step`);
      }
      const outside = watched.outside();
      if (outside != null) {
        throw new StepGraphRefusal(
          `variable ${outside} is assigned outside the loss function (a replay would skip that)`,
        );
      }
      const fw = forward as { start: number; end: number };
      const outputs = result.outputs.map((t) => {
        const ref = refOf(t);
        if (ref == null) throw new StepGraphRefusal('a returned tensor was made outside the step');
        return { ref, shape: [...t.shape] };
      });
      const assigned = watched.assignments.map((a) => a.variable);
      for (const v of assigned) {
        const ref = refOf(v);
        if (ref == null) {
          throw new StepGraphRefusal(
            `variable ${v.name} is assigned a tensor made outside the step (a replay would skip that)`,
          );
        }
        outputs.push({ ref, shape: [...v.shape] });
      }
      const externalIds = new Set(recording.externals.map((ext) => ext.dataId));
      const escapes: Escape[] = [];
      const escaped: { tensor: tf.Tensor; fill: object | null }[] = [];
      const loss = forwardLoss as tf.Scalar | null;
      for (const order of aliveAfter(madeInForward.made, [
        ...result.outputs,
        ...(loss ? [loss] : []),
      ])) {
        const t = madeInForward.made[order]!;
        const ref = refOf(t);
        // Made in JS (never a kernel's input or output): real values on a replay too.
        if (ref == null || ref.kind === 'external') continue;
        if (t.dtype !== 'float32' && t.dtype !== 'int32' && t.dtype !== 'bool') {
          throw new StepGraphRefusal(`a tensor kept by the loss function has dtype ${t.dtype}`);
        }
        escapes.push({ order, output: outputs.length });
        outputs.push({ ref, shape: [...t.shape] });
        escaped.push({ tensor: t, fill: externalIds.has(t.dataId) ? null : t.dataId });
      }
      // An assigned variable's old value: freed by the assignment, kept by the watcher.
      const oldValues = new Map(watched.assignments.map((a) => [a.oldDataId, a.oldValues]));
      const probeIds = new Map(probes.map((p, i) => [p.dataId as object, i]));
      const probeOf = recording.externals.map((ext) => probeIds.get(ext.dataId!) ?? -1);
      // Probes and variables (those assigned too) are inputs, however small (never baked in).
      const variableIds = new Set([
        ...this.variables.map((v) => v.dataId as object),
        ...oldValues.keys(),
      ]);
      recording.externals.forEach((ext, i) => {
        if (probeOf[i]! >= 0 || variableIds.has(ext.dataId!)) delete ext.values;
      });
      recording.externals.forEach((ext, i) => {
        if (ext.origin !== 'prior' || probeOf[i]! >= 0) return;
        if (ext.firstRead.call < fw.start || ext.firstRead.call >= fw.end) {
          throw new StepGraphRefusal(
            `a tensor made before the step ([${ext.shape}] ${ext.dtype}) is first read outside the loss function`,
          );
        }
      });
      // This step's inputs for the graph: read now, while the capture's data ids are known.
      const backend = tf.backend() as unknown as ReadBackend;
      const feeds = new Map<number, unknown>();
      recording.externals.forEach((ext, i) => {
        if (ext.origin === 'prior' && probeOf[i]! < 0)
          feeds.set(i, oldValues.get(ext.dataId!) ?? backend.readSync(ext.dataId!));
      });
      for (const ext of recording.externals) delete ext.dataId;
      const signature = JSON.stringify({
        calls: recording.calls,
        values: recording.values,
        externals: recording.externals.map(({ values: _v, ...rest }) => rest),
        outputs,
        forward: fw,
        probeOf,
        extra: result.extra,
        assigned: assigned.map((v) => v.name),
        escapes,
      });
      // Its constants' values are adopt's to compare (a changed one refuses the graph).
      if (stubFor != null && signature !== stubFor.capture.signature)
        throw new StubMismatch('its recording is not the compiled one');
      return {
        result,
        capture: {
          recording,
          outputs,
          forward: fw,
          probeOf,
          extra: result.extra,
          signature,
          returned: result.outputs.length,
          assigned,
          escapes,
        },
        feeds,
        escaped,
        discard: () => {
          tf.dispose(result.outputs);
          undoStubbed(watched.assignments, madeInForward.made, plan!.placeholders);
        },
      };
    } catch (e) {
      if (plan != null) {
        // Placeholders, not values: nothing of this attempt may stay (the step runs for real).
        tf.dispose(result.outputs);
        undoStubbed(watched.assignments, madeInForward.made, plan.placeholders);
        throw asMismatch(e);
      }
      // The step itself ran op by op and is right: a refusal hands its values back, so that
      // the step is not computed (and its side effects done) a second time.
      if (e instanceof StepGraphRefusal) e.stepResult = result;
      else tf.dispose(result.outputs);
      throw e;
    }
  }

  private compile(capture: Capture<E>): CompiledEntry<E> {
    const t0 = performance.now();
    const built = buildStepGraph(capture.recording, capture.outputs, {
      threads: this.options.threads ?? 1,
      layerNormGradients: this.options.layerNormGradients === true,
      geluGradients: this.options.geluGradients === true,
      elideMatMulReshapes: this.options.elideMatMulReshapes === true,
    });
    const runtime = loadOnnxRuntime()!;
    const bytes = encodeOnnxModel(built.graph);
    // ONNX Runtime's common subexpression elimination merges equal nodes anywhere in the step;
    // left out above 1 GiB of recorded intermediates (cse.ts says why).
    const keepCse = keepsCommonSubexpressionElimination(capture.recording);
    const arena = new ArenaChoice(this.options.memoryArena, capture.recording);
    const open = (): OrtSession => {
      const session = new runtime.binding.binding.InferenceSession() as unknown as OrtSession;
      session.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
        intraOpNumThreads: this.options.threads ?? 1,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: this.options.optimization ?? 'all',
        ...(this.options.profilePrefix != null
          ? { enableProfiling: true, profileFilePrefix: this.options.profilePrefix }
          : {}),
        logSeverityLevel: 3,
        enableCpuMemArena: arena.arena,
        enableMemPattern: this.options.memoryPattern ?? false,
        extra: {
          session: { intra_op: { allow_spinning: ortSpinning() } },
          ...(keepCse
            ? {}
            : { optimization: { disable_specified_optimizers: 'CommonSubexpressionElimination' } }),
        },
      });
      return session;
    };
    const { start, end } = capture.forward;
    const entry: CompiledEntry<E> = {
      capture,
      session: open(),
      confirmed: false,
      arena,
      reopen: arena.watched ? open : null,
      inputExternals: built.inputExternals,
      outputShapes: capture.outputs.map((o) => o.shape),
      outputDtypes: capture.outputs.map((o) =>
        o.ref.kind === 'value'
          ? capture.recording.values[o.ref.index]!.dtype
          : capture.recording.externals[o.ref.index]!.dtype,
      ),
      attrsJson: capture.recording.calls.slice(start, end).map((c) => JSON.stringify(c.attrs)),
    };
    this.entries.push(entry);
    while (this.entries.length > (this.options.maxGraphs ?? 4))
      this.entries.shift()!.session.dispose();
    this.status.compiled++;
    this.status.compileMs += performance.now() - t0;
    this.status.lastGraphNodes = built.nodeCount;
    this.status.lastGraphCalls = built.keptCalls;
    return entry;
  }

  /**
   * The step's returned tensors; the rest of the graph's outputs go into the assigned
   * variables and into the escaped tensors' data (`fills`, in the capture's escapes' order;
   * null: leave as it is).
   */
  private finish(
    entry: CompiledEntry<E>,
    fromGraph: tf.Tensor[],
    fills: (object | null)[],
  ): tf.Tensor[] {
    const { returned, assigned, escapes } = entry.capture;
    assignAll(assigned, fromGraph.slice(returned, returned + assigned.length));
    escapes.forEach((escape, k) => {
      const dataId = fills[k];
      if (dataId != null) fillData(dataId, fromGraph[escape.output]!);
    });
    tf.dispose(fromGraph.slice(returned + assigned.length));
    return fromGraph.slice(0, returned);
  }

  /** The step's outputs from the graph (assigned values last), for these inputs and probes. */
  private runGraph(
    entry: CompiledEntry<E>,
    feeds: Map<number, unknown>,
    probes: tf.Tensor[],
  ): tf.Tensor[] {
    const t1 = performance.now();
    const { capture } = entry;
    const runtime = loadOnnxRuntime()!;
    const Tensor = runtime.Tensor as unknown as new (
      type: string,
      data: unknown,
      dims: number[],
    ) => OrtTensor;
    const ortFeeds: Record<string, OrtTensor> = {};
    entry.inputExternals.forEach((e) => {
      const ext = capture.recording.externals[e]!;
      const probe = capture.probeOf[e]!;
      const data = probe >= 0 ? readTensor(probes[probe]!) : feeds.get(e);
      if (data == null) throw new Error(`step graph: no value for input e${e}`);
      ortFeeds[`e${e}`] = new Tensor(ortType(ext.dtype), typedFor(data, ext.dtype), ext.shape);
    });
    // float32 outputs in arrays of the step's disposed tensors (recycled-arrays.ts): ONNX
    // Runtime writes every element of a preallocated output.
    const resident = this.options.residentOutputs ?? null;
    const results = entry.outputShapes.map((s, k) => {
      const dtype = entry.outputDtypes[k]!;
      const size = s.reduce((a, b) => a * b, 1);
      return dtype === 'float32' ? takeResidentArray(size, resident) : zerosOf(dtype, size);
    });
    const fetches: Record<string, OrtTensor> = {};
    results.forEach(
      (r, k) =>
        (fetches[`out${k}`] = new Tensor(
          ortType(entry.outputDtypes[k]!),
          r,
          entry.outputShapes[k]!,
        )),
    );
    const faultsBefore = entry.arena.watching ? minorPageFaults() : 0;
    entry.session.run(ortFeeds, fetches, {});
    if (entry.arena.watching && entry.arena.observe(minorPageFaults() - faultsBefore)) {
      // This run's values stand; the next runs get the arena (arena.ts).
      entry.session.dispose();
      entry.session = entry.reopen!();
      entry.reopen = null;
      this.status.arenaReopened++;
      this.options.debug?.(
        "step graph opened again with ONNX Runtime's arena: its runs without it page-faulted",
      );
    }
    this.status.graphMs += performance.now() - t1;
    return results.map((r, k) =>
      r instanceof Float32Array
        ? recycledTensor(r, entry.outputShapes[k]!, resident)
        : tf.tensor(r, entry.outputShapes[k]!, entry.outputDtypes[k]!),
    );
  }

  /**
   * Runs f with every kernel stubbed, checking each call against the capture's forward pass;
   * returns the prior externals' values (by external index) and, per escape of the capture,
   * the placeholder to fill (escape.ts); or null on any difference.
   */
  private stubForward(
    entry: CompiledEntry<E>,
    f: () => tf.Scalar,
  ): { feeds: Map<number, unknown>; fills: (object | null)[] } | null {
    const { calls, values, externals } = entry.capture.recording;
    const { start, end } = entry.capture.forward;
    const backend = tf.backend() as unknown as ReadBackend;
    const feeds = new Map<number, unknown>();
    const placeholderOf = new Map<object, number>();
    const externalSeen = new Map<object, number>();
    // Placeholders hold no values: a loss function that reads one (dataSync) would branch on
    // garbage, so a read stops the stub (and the step runs op by op).
    const empty = new Set<object>();
    const readSync = backend.readSync;
    backend.readSync = function (this: ReadBackend, dataId: object) {
      if (empty.has(dataId)) throw new ForwardMismatch("the loss function reads a tensor's value");
      return readSync.call(this, dataId);
    };
    let k = start;
    const parsedAttrs = parsedAttrsOf(entry.attrsJson);
    const undo = interceptKernels(tf.getBackend(), (config) => (args) => {
      const call = calls[k];
      if (k >= end || call == null || call.kernelName !== config.kernelName) {
        throw new ForwardMismatch(
          `call ${k - start}: ${config.kernelName} where ${call?.kernelName} was`,
        );
      }
      const at = k - start;
      parsedAttrs[at] ??= JSON.parse(entry.attrsJson[at]!) as unknown;
      if (!sameAttrs(args.attrs, entry.attrsJson[at]!, parsedAttrs[at])) {
        throw new ForwardMismatch(`call ${k - start} (${call.kernelName}): other attributes`);
      }
      const infos = Object.values(args.inputs).filter((x): x is tf.TensorInfo => x != null);
      if (infos.length !== call.inputs.length)
        throw new ForwardMismatch(`call ${k - start}: inputs`);
      infos.forEach((info, slot) => {
        const recorded = call.inputs[slot]!;
        if (info.dtype !== recorded.dtype || !sameShape(info.shape, recorded.shape)) {
          throw new ForwardMismatch(`call ${k - start} (${call.kernelName}): input shapes differ`);
        }
        if (!sameSource(recorded.ref, info.dataId, placeholderOf, externalSeen)) {
          throw new ForwardMismatch(`call ${k - start} (${call.kernelName}): data flow differs`);
        }
        if (recorded.ref.kind === 'external' && !externalSeen.has(info.dataId)) {
          externalSeen.set(info.dataId, recorded.ref.index);
          const ext = externals[recorded.ref.index]!;
          const current = readStored(backend, info.dataId);
          if (ext.values != null) {
            if (!sameValues(ext.values, current as ArrayLike<number>)) {
              throw new ForwardMismatch(
                `a constant [${ext.shape}] read by the loss function changed`,
              );
            }
          } else {
            feeds.set(recorded.ref.index, current);
          }
        }
      });
      const outs = call.outputs.map((v, o) => {
        // A kernel that returns its input's data (reshape, identity) is stubbed the same way.
        const alias = call.aliases[o]!;
        let dataId: object;
        if (alias >= 0) {
          // One more backend reference to the shared data, as the real kernel takes.
          dataId = infos[alias]!.dataId;
          backend.incRef(dataId);
        } else {
          // Backend data without values: reference counted like any other, never read.
          dataId = backend.write(undefined, values[v]!.shape, values[v]!.dtype);
          empty.add(dataId);
        }
        placeholderOf.set(dataId, v);
        return { dataId, shape: [...values[v]!.shape], dtype: values[v]!.dtype };
      });
      k++;
      return outs.length === 1 ? outs[0]! : outs;
    });
    // Under a tape, as in the captured step: saving tensors for the gradient clones them.
    const engine = privateEngine();
    const outerTape = engine.state.activeTape;
    engine.startTape();
    const tape = engine.state.activeTape!;
    const tapeStart = tape.length;
    // Seen, not done: the graph's outputs are assigned after it has run (assign.ts).
    const stubAssigned = watchStubAssignments();
    let inForward = false;
    const made = watchMadeTensors(() => inForward);
    let fills: (object | null)[];
    try {
      tf.tidy(() => {
        inForward = true;
        try {
          f();
        } finally {
          inForward = false;
        }
        const { assigned, outputs, returned } = entry.capture;
        const would = [...stubAssigned.assigned];
        const same =
          would.length === assigned.length &&
          would.every(([v, dataId], k) => {
            const ref = outputs[returned + k]!.ref;
            const source =
              ref.kind === 'value' ? placeholderOf.get(dataId) : externalSeen.get(dataId);
            return v === assigned[k] && source === ref.index;
          });
        if (!same) {
          throw new ForwardMismatch(
            `the variables assigned (${would.map(([v]) => v.name).join(', ') || 'none'}) differ from the compiled step's`,
          );
        }
      });
      if (k !== end) {
        throw new ForwardMismatch(
          `it made ${k - start} kernel calls, the compiled one ${end - start}`,
        );
      }
      // The tape's saved clones are freed below, as the gradient code frees them in a capture.
      const saved = tape.slice(tapeStart).flatMap((node) => node.saved ?? []);
      fills = this.escapedPlaceholders(entry, made.made, saved, empty, placeholderOf);
    } catch (e) {
      // Placeholders the loss function kept would hold nothing: reading one throws.
      for (const t of made.made) {
        if (!t.isDisposed && empty.has(t.dataId))
          poison(t.dataId, [...t.shape], t.dtype as StepDtype);
      }
      this.note(
        `op by op: ${e instanceof ForwardMismatch ? 'the forward pass differs from the compiled one' : 'the stubbed forward pass failed'} (${e instanceof Error ? e.message : String(e)})`,
      );
      return null;
    } finally {
      backend.readSync = readSync;
      stubAssigned.undo();
      made.undo();
      engine.endTape();
      const removed = tape.splice(tapeStart);
      for (const node of removed) for (const t of node.saved ?? []) t.dispose();
      engine.state.activeTape = outerTape;
      undo();
    }
    return { feeds, fills };
  }

  /**
   * Where the stub's escaping placeholders are, in the capture's escapes' order (null: that
   * tensor shares real data, a batch's or a variable's); throws if a placeholder is alive that
   * the capture did not see escape (it could not be filled).
   */
  private escapedPlaceholders(
    entry: CompiledEntry<E>,
    made: readonly tf.Tensor[],
    saved: readonly tf.Tensor[],
    empty: Set<object>,
    placeholderOf: Map<object, number>,
  ): (object | null)[] {
    const { escapes, outputs } = entry.capture;
    const expected = new Map(escapes.map((e, k) => [e.order, k]));
    const fills: (object | null)[] = escapes.map(() => null);
    for (const order of aliveAfter(made, saved)) {
      const t = made[order]!;
      const k = expected.get(order);
      const ref = k == null ? null : outputs[escapes[k]!.output]!.ref;
      if (!empty.has(t.dataId)) {
        if (k != null && placeholderOf.get(t.dataId) !== ref!.index) {
          throw new ForwardMismatch('a tensor kept by the loss function differs');
        }
        continue;
      }
      if (k == null || ref!.kind !== 'value' || placeholderOf.get(t.dataId) !== ref!.index) {
        throw new ForwardMismatch(
          `the loss function kept a tensor ([${t.shape}] ${t.dtype}) the compiled step does not return`,
        );
      }
      fills[k] = t.dataId;
    }
    return fills;
  }
}

/**
 * Where the graph's outputs and op by op's differ by more than float32 rounding over a step,
 * described; null when they agree. Each output: every element within 0.25 of the output's own
 * largest value, plus 1e-4 of the largest of all outputs (for outputs that are rounding noise
 * around zero), and the whole output within 2e-2 in relative L2 norm (plus the same allowance
 * per element). Not tighter, because a deep batch-norm network is that ill-conditioned in
 * float32: ResNet-20 at batch 64, op by op with the native kernels against stock TF.js's cpu
 * kernels (both right), differed by up to 2.2e-2 (gradients) and 4.5e-2 (Hutchinson diagonal)
 * of an output's largest value, and 1e-2 in L2, over three steps (PERFORMANCE.md, seventh
 * session); and in `train` at batch 64 one element of a Hutchinson diagonal differed by 7.9e-2
 * (a pre-activation near a ReLU kink rounds to the other side and flips its mask: a few
 * elements move a lot, the L2 norm little). The L2 bound is the real check; the per-element one
 * catches NaN, infinities and gross errors. A wrong translation (a wrong axis, sign, operand or
 * padding) differs by far more in L2.
 * How close accepted graphs run (status.lastCheck; bench/speed/check-margins.ts): on real data
 * ~1e-4 of the L2 bound; ResNet-20 at init on random images and labels up to 0.53 (batch 8, one
 * thread; batch 64: 0.24), in the L2 norms of batch norms' beta and gamma gradients and
 * diagonals (sums that nearly cancel), and seeds split into ~1e-4 and 0.1-0.5: discrete events.
 * There op by op itself sits on a knife edge: moved by one unit in the last place of its inputs
 * it lands within 2e-4 of the bound on the graph's values, while the graph so moved stays put.
 * So a rounding spread measured on the graph would not widen the bound where it matters.
 */
function disagreement(
  graph: tf.Tensor[],
  ops: tf.Tensor[],
): { differs: string | null; margin: CheckMargin } {
  const arrays = ops.map((t) => t.dataSync());
  const largest = arrays.map((a) => {
    let m = 0;
    for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
    return m;
  });
  const overall = Math.max(...largest);
  const margin: CheckMargin = { l2: 0, l2Output: -1, element: 0, elementOutput: -1 };
  let differs: string | null = null;
  // Every output is measured (the margins), the first that fails is named.
  for (let k = 0; k < graph.length; k++) {
    const a = graph[k]!.dataSync();
    const b = arrays[k]!;
    const allowance = 1e-4 * overall;
    const tolerance = 0.25 * largest[k]! + allowance;
    let squaredError = 0;
    let squaredNorm = 0;
    let worst = 0;
    for (let i = 0; i < b.length; i++) {
      const d = Math.abs(a[i]! - b[i]!);
      if (Number.isNaN(a[i]!) && Number.isNaN(b[i]!)) continue;
      if (differs == null && !(d <= tolerance)) {
        differs = `output ${k} differs by ${d} at ${i} (tolerance ${tolerance})`;
      }
      // NaN on one side only counts as infinitely far.
      worst = Math.max(worst, Number.isNaN(d) ? Infinity : d);
      squaredError += d * d;
      squaredNorm += b[i]! * b[i]!;
    }
    if (worst / tolerance > margin.element) {
      margin.element = worst / tolerance;
      margin.elementOutput = k;
    }
    const l2 = Math.sqrt(squaredError);
    const l2Tolerance = 2e-2 * Math.sqrt(squaredNorm) + allowance * Math.sqrt(b.length);
    const l2Ratio = Number.isNaN(l2 / l2Tolerance) ? Infinity : l2 / l2Tolerance;
    if (l2Ratio > margin.l2) {
      margin.l2 = l2Ratio;
      margin.l2Output = k;
    }
    if (differs == null && !(l2 <= l2Tolerance)) {
      differs = `output ${k} differs by ${l2} in L2 norm (tolerance ${l2Tolerance})`;
    }
  }
  return { differs, margin };
}

/**
 * Undoes a stubbed capture that will not be used: the variables it assigned take their old
 * values again, and placeholders the loss function kept are poisoned (escape.ts).
 */
function undoStubbed(
  assignments: readonly CapturedAssignment[],
  made: readonly tf.Tensor[],
  placeholders: ReadonlySet<object>,
): void {
  for (const { variable, oldValues } of assignments) {
    const old = tf.tensor(oldValues as Float32Array, variable.shape, variable.dtype);
    variable.assign(old);
    old.dispose();
  }
  for (const t of made) {
    if (!t.isDisposed && placeholders.has(t.dataId))
      poison(t.dataId, [...t.shape], t.dtype as StepDtype);
  }
}

/** A stubbed capture's failure of any kind, as the StubMismatch that sends it op by op. */
function asMismatch(e: unknown): StubMismatch {
  if (e instanceof StubMismatch) return e;
  return new StubMismatch(e instanceof Error ? e.message : String(e));
}

function sameSource(
  ref: ValueRef,
  dataId: object,
  placeholderOf: Map<object, number>,
  externalSeen: Map<object, number>,
): boolean {
  if (ref.kind === 'value') return placeholderOf.get(dataId) === ref.index;
  if (placeholderOf.has(dataId)) return false;
  const seen = externalSeen.get(dataId);
  return seen == null || seen === ref.index;
}

function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return false;
  }
  return true;
}

/**
 * Converted copies of stored arrays whose type is not their dtype's, by stored array: the cpu
 * backend's OneHot stores its int32 output (one-hot labels) as a Float32Array, and bool data as
 * a Uint8Array, and its readSync converts them afresh on every read (the transformer's labels,
 * [64, 64, 96]: ~3 ms a replay). Reusing a copy is safe because a stored array is never written
 * again: kernels do not write into their inputs, readSync hands out copies of such arrays, and
 * the output pool (buffer-pool.ts) never reuses an array that was read, as this one is.
 */
const convertedCopies = new WeakMap<object, unknown>();

/** A tensor's values as readSync gives them, without converting the same stored array twice. */
function readStored(backend: ReadBackend, dataId: object): unknown {
  // Fed to ONNX Runtime, not kept: an array of ours stays unseen (recycled-arrays.ts).
  const ours = recycledValues(backend as unknown as tf.KernelBackend, dataId);
  if (ours != null) return ours;
  const record = backend.data?.get(dataId);
  const stored = record?.values;
  if (record == null || !ArrayBuffer.isView(stored)) return backend.readSync(dataId);
  const { dtype } = record;
  if (
    (dtype === 'float32' && stored instanceof Float32Array) ||
    (dtype === 'int32' && stored instanceof Int32Array)
  ) {
    return stored;
  }
  let copy = convertedCopies.get(stored);
  if (copy == null) {
    copy = backend.readSync(dataId);
    convertedCopies.set(stored, copy);
  }
  return copy;
}

/** Per compiled graph, its forward calls' recorded attributes parsed (filled as the stub goes). */
const parsedAttrsCache = new WeakMap<readonly string[], unknown[]>();
function parsedAttrsOf(attrsJson: readonly string[]): unknown[] {
  let parsed = parsedAttrsCache.get(attrsJson);
  if (parsed == null) {
    parsed = new Array<unknown>(attrsJson.length);
    parsedAttrsCache.set(attrsJson, parsed);
  }
  return parsed;
}

function readTensor(t: tf.Tensor): unknown {
  return (
    recycledValues(tf.backend(), t.dataId) ??
    (tf.backend() as unknown as ReadBackend).readSync(t.dataId)
  );
}

const ortType = (dtype: StepDtype) => dtype;

function zerosOf(dtype: StepDtype, size: number): Float32Array | Int32Array | Uint8Array {
  return dtype === 'float32'
    ? new Float32Array(size)
    : dtype === 'int32'
      ? new Int32Array(size)
      : new Uint8Array(size);
}

function typedFor(data: unknown, dtype: StepDtype): Float32Array | Int32Array | Uint8Array {
  if (dtype === 'float32')
    return data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
  if (dtype === 'int32')
    return data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>);
  return data instanceof Uint8Array ? data : Uint8Array.from(data as ArrayLike<number>);
}

export { StepGraphRefusal };
