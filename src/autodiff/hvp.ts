/**
 * Hessian-vector products by reverse-over-reverse (Pearlmutter): H v = d(g . v)/dw.
 *
 * One forward pass and one gradient pass are recorded on the engine's tape; then for
 * each vector v we form g . v and sweep the recorded graph backwards once more. So k
 * vectors cost one forward, one backward and k second-order sweeps.
 */
import * as tf from '@tensorflow/tfjs';
import { backprop, filterTape } from './backprop.js';
import { privateEngine, type TapeNode } from './engine.js';
import { assertSecondOrderSupported } from './verified-kernels.js';
import { installSecondOrderSupport } from './install.js';
import { addAll } from '../util/add-all.js';

export interface GradAndHvp {
  loss: tf.Scalar;
  grads: tf.Tensor[];
  hvp: tf.Tensor[];
}

export interface GradAndHvpMany {
  loss: tf.Scalar;
  grads: tf.Tensor[];
  /** One list of products per vector list given, each matching `vars`. */
  hvps: tf.Tensor[][];
}

export interface HvpOptions {
  /**
   * Throw when the loss is NaN or +-Inf (default true, except on webgpu, whose synchronous
   * reads can race; a NaN loss gives NaN products there). Reading the loss back costs one small
   * synchronous download per call.
   */
  checkFinite?: boolean;
  /**
   * Compute on a backend not in SECOND_ORDER_VERIFIED_BACKENDS for this call (default false:
   * refuse with UnverifiedBackendError). See also allowUnverifiedBackend().
   */
  allowUnverifiedBackend?: boolean;
}

/**
 * Backends on which the whole coverage suite (checkSecondOrder) passes, in Node (cpu, wasm) and
 * in headless Chromium (webgl, wasm, webgpu on SwiftShader; test/browser/coverage.browser.ts runs
 * it whole on webgl and wasm, coverage-webgpu.browser.ts on webgpu). Products on any other
 * backend (tfjs-node's 'tensorflow', a custom one) are refused unless the user opts in.
 */
export const SECOND_ORDER_VERIFIED_BACKENDS: readonly string[] = ['cpu', 'wasm', 'webgl', 'webgpu'];

const allowedUnverified = new Set<string>();

/**
 * Lets gradAndHvp (and so AdaHessian and the analysis) run on `backend` although its products
 * have not been verified here; run checkSecondOrder() on it first. Returns a function that
 * withdraws the permission.
 */
export function allowUnverifiedBackend(backend: string): () => void {
  allowedUnverified.add(backend);
  return () => allowedUnverified.delete(backend);
}

/** Thrown when a product is asked for on a backend whose products are not verified. */
export class UnverifiedBackendError extends Error {
  override name = 'UnverifiedBackendError';
  constructor(readonly backendName: string) {
    super(
      `Hessian-vector products on backend '${backendName}' are not verified (verified: ` +
        `${SECOND_ORDER_VERIFIED_BACKENDS.join(', ')}) and could be silently wrong; run ` +
        `checkSecondOrder() on it and, if every case passes, call allowUnverifiedBackend('${backendName}') ` +
        'or pass { allowUnverifiedBackend: true }.',
    );
  }
}

function assertVerifiedBackend(options: HvpOptions): void {
  const backend = tf.getBackend();
  if (SECOND_ORDER_VERIFIED_BACKENDS.includes(backend) || allowedUnverified.has(backend)) return;
  if (options.allowUnverifiedBackend === true) return;
  throw new UnverifiedBackendError(backend);
}

/** Thrown for input that cannot give a meaningful product; the message names the problem. */
export class HvpInputError extends Error {
  override name = 'HvpInputError';
}

/** Loss, gradient and H v for one list of vectors (one tensor per variable). */
export function gradAndHvp(
  lossFn: () => tf.Scalar,
  vars: tf.Variable[],
  vectors: tf.Tensor[],
  options: HvpOptions = {},
): GradAndHvp {
  const { loss, grads, hvps } = gradAndHvpMany(lossFn, vars, [vectors], options);
  return { loss, grads, hvp: hvps[0]! };
}

/** Loss, gradient and H v_j for several vector lists, sharing one forward and gradient pass. */
export function gradAndHvpMany(
  lossFn: () => tf.Scalar,
  vars: tf.Variable[],
  vectorLists: tf.Tensor[][],
  options: HvpOptions = {},
): GradAndHvpMany {
  installSecondOrderSupport();
  assertVerifiedBackend(options);
  validate(vars, vectorLists);
  const engine = privateEngine();
  const outerDepth = engine.state.gradientDepth;
  let tape: TapeNode[] | null = null;
  try {
    return tf.tidy(() => {
      let loss: tf.Tensor;
      let grads: tf.Tensor[];
      const dots: tf.Scalar[] = [];
      engine.startTape();
      try {
        tape = engine.state.activeTape;
        const first = engine.gradients(() => checkedLoss(lossFn), vars, undefined, true);
        loss = first.value;
        grads = first.grads.map((g, i) => g ?? tf.zerosLike(vars[i]!));
        for (const vectors of vectorLists) {
          dots.push(addAll(grads.map((g, i) => tf.sum(tf.mul(g, vectors[i]!)))) as tf.Scalar);
        }
      } finally {
        engine.endTape();
      }
      if (options.checkFinite ?? !RACY_SYNC_READ_BACKENDS.includes(tf.getBackend())) {
        assertSyncReadWorks();
        assertFinite(loss);
      }
      // The forward kernels between vars and loss: their gradient functions are what the
      // second-order sweep differentiates, so they must be verified too (a gradient computed
      // off the tape would otherwise just drop out of the path, silently).
      assertSecondOrderSupported(filterTape(tape!, vars, loss));
      // Every dot runs through the same kernels (the vectors are constants), so one check covers all.
      assertSecondOrderSupported(filterTape(tape!, vars, dots[0]!));
      const returned = [loss, ...grads, ...dots];
      const hvps = dots.map((dot, j) => {
        // The sweep itself leaves out edges whose gradient is identically zero (same result).
        const swept = filterTape(tape!, vars, dot, { skipZeroGradients: true });
        const last = j === dots.length - 1 && outerDepth === 0;
        const afterNode = last ? releaseAsSwept(tape!, swept, returned) : undefined;
        return tf.tidy(() =>
          backprop(swept, vars, dot, { afterNode }).map((h, i) => h ?? tf.zerosLike(vars[i]!)),
        );
      });
      return { loss: loss as tf.Scalar, grads, hvps };
    });
  } finally {
    releaseTape(tape, outerDepth);
  }
}

function checkedLoss(lossFn: () => tf.Scalar): tf.Scalar {
  const loss = lossFn();
  if (!(loss instanceof tf.Tensor)) {
    throw new HvpInputError('The loss function must return a tf.Tensor (a scalar).');
  }
  if (loss.rank !== 0) {
    throw new HvpInputError(
      `The loss must be a scalar, but the loss function returned shape [${loss.shape.join(', ')}]; ` +
        'reduce it (e.g. tf.mean) first.',
    );
  }
  if (loss.dtype !== 'float32') {
    throw new HvpInputError(`The loss must be float32, got ${loss.dtype}.`);
  }
  return loss;
}

/**
 * Backends whose synchronous read can come back before the queued work is done: webgpu copies
 * through a canvas, and in headless SwiftShader Chromium that copy raced and read zeros. The
 * finiteness check is off there unless asked for; a NaN loss still gives NaN products.
 */
const RACY_SYNC_READ_BACKENDS = ['webgpu'];

const syncReadChecked = new WeakSet<object>();

/**
 * The finiteness check reads the loss synchronously. webgpu does that through a canvas copy,
 * which some browsers cannot do (headless Chromium whose compositor is not on Vulkan SwiftShader
 * returns zeros, and its later asynchronous reads fail too); a zero loss would pass the check and
 * every number read after it would be zero. So the first check on each backend reads back a value
 * computed on the device and refuses when it comes back wrong.
 */
function assertSyncReadWorks(): void {
  const backend = tf.backend();
  if (syncReadChecked.has(backend)) return;
  const got = tf.tidy(() => Array.from(tf.add(tf.fill([4], 1), tf.fill([4], 1)).dataSync()));
  if (!got.every((x) => x === 2)) {
    throw new Error(
      `Backend '${tf.getBackend()}' reads tensors back wrong here: dataSync() of [2, 2, 2, 2] ` +
        `gave [${got.join(', ')}]; nothing it computes can be checked or trusted in this browser. ` +
        '(Headless Chromium needs --use-vulkan=swiftshader for webgpu.)',
    );
  }
  syncReadChecked.add(backend);
}

function assertFinite(loss: tf.Tensor): void {
  const value = loss.dataSync()[0]!;
  if (!Number.isFinite(value)) {
    throw new HvpInputError(`The loss is ${value}; a Hessian-vector product needs a finite loss.`);
  }
}

function validate(vars: tf.Variable[], vectorLists: tf.Tensor[][]): void {
  if (!Array.isArray(vars) || vars.length === 0) {
    throw new HvpInputError('vars must be a non-empty array of tf.Variable.');
  }
  vars.forEach((v, i) => {
    if (!(v instanceof tf.Variable)) throw new HvpInputError(`vars[${i}] is not a tf.Variable.`);
    if (v.dtype !== 'float32') {
      throw new HvpInputError(
        `vars[${i}] ('${v.name}') is ${v.dtype}; only float32 variables are supported.`,
      );
    }
  });
  if (!Array.isArray(vectorLists) || vectorLists.length === 0) {
    throw new HvpInputError('At least one vector list is required.');
  }
  vectorLists.forEach((vectors, j) => {
    const where = vectorLists.length > 1 ? ` (vector list ${j})` : '';
    if (!Array.isArray(vectors) || vectors.length !== vars.length) {
      throw new HvpInputError(
        `Expected ${vars.length} vector tensors, one per variable${where}, got ${Array.isArray(vectors) ? vectors.length : typeof vectors}.`,
      );
    }
    vectors.forEach((v, i) => {
      const w = vars[i]!;
      if (!(v instanceof tf.Tensor))
        throw new HvpInputError(`vectors[${i}]${where} is not a tf.Tensor.`);
      if (!tf.util.arraysEqual(v.shape, w.shape)) {
        throw new HvpInputError(
          `vectors[${i}]${where} has shape [${v.shape.join(', ')}] but variable '${w.name}' has shape [${w.shape.join(', ')}].`,
        );
      }
      if (v.dtype !== 'float32')
        throw new HvpInputError(`vectors[${i}]${where} must be float32, got ${v.dtype}.`);
    });
  });
}

/**
 * For the last sweep over a tape no enclosing gradient owns: frees the saved tensors of the
 * nodes it skips now, and returns a callback that frees each swept node's saved tensors and
 * outputs once the sweep is past it (nothing earlier in the tape reads them). Without this the
 * whole forward and gradient graph stayed alive until the end. Outputs the caller gets back
 * (`returned`) or kept with tf.keep stay. Exported for tests only.
 */
export function releaseAsSwept(
  tape: TapeNode[],
  swept: TapeNode[],
  returned: tf.Tensor[],
): (node: TapeNode) => void {
  const sweptIds = new Set(swept.map((node) => node.id));
  for (const node of tape) {
    if (!sweptIds.has(node.id)) for (const t of node.saved ?? []) t.dispose();
  }
  const keep = new Set(returned.map((t) => t.id));
  return (node) => {
    for (const t of node.saved ?? []) t.dispose();
    for (const t of node.outputs) if (!keep.has(t.id) && !t.kept) t.dispose();
  };
}

/** Frees what the engine keeps for a recorded tape, as engine.gradients does at depth 0. */
function releaseTape(tape: TapeNode[] | null, outerDepth: number): void {
  if (tape == null || outerDepth > 0) return; // an enclosing gradient still owns the tape
  for (const node of tape) for (const t of node.saved ?? []) t.dispose();
  const engine = privateEngine();
  if (engine.state.activeTape === tape) engine.state.activeTape = null;
}
