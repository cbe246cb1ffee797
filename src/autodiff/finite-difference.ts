/**
 * Central finite differences of the gradient, the yardstick for every Hessian-vector
 * product we claim: (g(w + e v) - g(w - e v)) / 2e -> H v as e -> 0.
 */
import * as tf from '@tensorflow/tfjs';
import { gradAndHvp } from './hvp.js';
import { privateEngine } from './engine.js';
import { addAll } from '../util/add-all.js';

export interface FiniteDifferenceComparison {
  /** ||Hv - fd|| / max(||Hv||, ||fd||), the smallest over the step sizes tried. */
  relError: number;
  /** The step size that gave relError. */
  epsilon: number;
  /** ||Hv||, to tell a zero product from a small one. */
  hvpNorm: number;
}

/** Gradient of lossFn at the variables' current values (zeros where it does not depend on one). */
export function gradientAt(lossFn: () => tf.Scalar, vars: tf.Variable[]): tf.Tensor[] {
  return tf.tidy(() => {
    const { grads } = privateEngine().gradients(lossFn, vars, undefined, true);
    return grads.map((g, i) => g ?? tf.zerosLike(vars[i]!));
  });
}

/** A random direction of unit norm over all variables, reproducible from `seed`. */
export function randomUnitVector(vars: tf.Variable[], seed: number): tf.Tensor[] {
  return tf.tidy(() => {
    const raw = vars.map((v, i) => tf.randomNormal(v.shape, 0, 1, 'float32', seed + i));
    const norm = tf.sqrt(addAll(raw.map((r) => tf.sum(tf.square(r)))));
    return raw.map((r) => tf.div(r, norm));
  });
}

export interface FiniteDifferenceOptions {
  vector?: tf.Tensor[];
  epsilons?: number[];
  seed?: number;
}

/**
 * Compares gradAndHvp with central differences along `vector` (a random unit vector when
 * omitted). The variables are restored bit for bit afterwards.
 */
export function compareHvpWithFiniteDifferences(
  lossFn: () => tf.Scalar,
  vars: tf.Variable[],
  options: FiniteDifferenceOptions = {},
): FiniteDifferenceComparison {
  const steps = comparison(lossFn, vars, options, true);
  try {
    let step = steps.next();
    while (!step.done) step = steps.next(norm(step.value));
    return step.value;
  } finally {
    steps.return(undefined as never);
  }
}

/**
 * compareHvpWithFiniteDifferences reading its numbers back asynchronously, as checkSecondOrder
 * does: webgpu's synchronous read copies through a canvas, which in headless SwiftShader Chromium
 * can run before the queued work is done and read zeros.
 */
export async function compareHvpWithFiniteDifferencesAsync(
  lossFn: () => tf.Scalar,
  vars: tf.Variable[],
  options: FiniteDifferenceOptions = {},
): Promise<FiniteDifferenceComparison> {
  const steps = comparison(lossFn, vars, options, false);
  try {
    let step = steps.next();
    while (!step.done) step = steps.next(await normAsync(step.value));
    return step.value;
  } finally {
    steps.return(undefined as never);
  }
}

/**
 * The comparison, yielding each list of tensors whose norm it needs and taking the norm back,
 * so that one body serves the synchronous and the asynchronous reader. Cleans up in `finally`
 * when the reader finishes or stops it.
 */
function* comparison(
  lossFn: () => tf.Scalar,
  vars: tf.Variable[],
  options: FiniteDifferenceOptions,
  checkFinite: boolean,
): Generator<tf.Tensor[], FiniteDifferenceComparison, number> {
  const epsilons = options.epsilons ?? [1e-2, 3e-3, 1e-3];
  const vector = options.vector ?? randomUnitVector(vars, options.seed ?? 1234);
  const original = vars.map((v) => tf.keep(v.clone()));
  const held: tf.Tensor[] = [];
  try {
    // This comparison is how a backend gets verified, so it runs on unverified ones too. A loss
    // that is not finite gives a NaN relError when it is not checked (the asynchronous reader).
    const r = gradAndHvp(lossFn, vars, vector, { allowUnverifiedBackend: true, checkFinite });
    const hvp = r.hvp;
    held.push(...hvp);
    tf.dispose([r.loss, ...r.grads]);
    const hvpNorm: number = yield hvp;
    let best: FiniteDifferenceComparison = { relError: Infinity, epsilon: NaN, hvpNorm };
    for (const eps of epsilons) {
      const at = (sign: number) => {
        vars.forEach((v, i) => {
          const moved = tf.tidy(() => tf.add(original[i]!, tf.mul(vector[i]!, sign * eps)));
          v.assign(moved);
          moved.dispose();
        });
        return gradientAt(lossFn, vars);
      };
      const plus = at(1);
      held.push(...plus);
      const minus = at(-1);
      held.push(...minus);
      const fd = tf.tidy(() => plus.map((p, i) => tf.div(tf.sub(p, minus[i]!), 2 * eps)));
      held.push(...fd);
      const diff = tf.tidy(() => fd.map((f, i) => tf.sub(f, hvp[i]!)));
      held.push(...diff);
      const scale = Math.max(hvpNorm, yield fd);
      const relError = scale === 0 ? 0 : (yield diff) / scale;
      if (relError < best.relError) best = { relError, epsilon: eps, hvpNorm };
      tf.dispose([...plus, ...minus, ...fd, ...diff]);
    }
    return best;
  } finally {
    tf.dispose(held);
    vars.forEach((v, i) => v.assign(original[i]!));
    tf.dispose(original);
    if (options.vector == null) tf.dispose(vector);
  }
}

async function normAsync(ts: tf.Tensor[]): Promise<number> {
  const squared = tf.tidy(() => addAll(ts.map((t) => tf.sum(tf.square(t)))));
  try {
    return Math.sqrt((await squared.data())[0]!);
  } finally {
    squared.dispose();
  }
}

function norm(ts: tf.Tensor[]): number {
  return Math.sqrt(tf.tidy(() => addAll(ts.map((t) => tf.sum(tf.square(t)))).dataSync()[0]!));
}
