/**
 * The loss along one or two directions through the current weights (PyHessian's loss
 * landscape example: w + alpha v for alpha in [-0.5, 0.5] along unit top eigenvectors).
 * The weights are restored exactly afterwards, even when a loss evaluation throws.
 */
import * as tf from '@tensorflow/tfjs';
import type { HessianOperator } from './hessian-operator.js';
import { AnalysisInputError } from './errors.js';

export interface LandscapeOptions {
  /** Largest step along each direction (default 0.5, as PyHessian's example). */
  radius?: number;
  /** Grid points per direction, including both ends and 0 when odd (default 21). */
  steps?: number;
}

export interface Landscape1d {
  alphas: number[];
  losses: number[];
}

export interface Landscape2d {
  alphas: number[];
  betas: number[];
  /** losses[i][j] is the loss at w + alphas[i] d1 + betas[j] d2. */
  losses: number[][];
}

function grid(options: LandscapeOptions): number[] {
  const radius = options.radius ?? 0.5;
  const steps = options.steps ?? 21;
  if (!(radius > 0) || !Number.isFinite(radius)) {
    throw new AnalysisInputError(`radius must be a positive number, got ${radius}.`);
  }
  if (!Number.isInteger(steps) || steps < 2) {
    throw new AnalysisInputError(`steps must be an integer of at least 2, got ${steps}.`);
  }
  return Array.from({ length: steps }, (_, i) => -radius + (2 * radius * i) / (steps - 1));
}

/** Evaluates the loss at w0 + sum_k coefficients[k] directions[k] for every coefficient list. */
async function lossesAt(
  op: HessianOperator,
  directions: tf.Tensor1D[],
  points: number[][],
): Promise<number[]> {
  for (const d of directions) {
    if (d.size !== op.size) {
      throw new AnalysisInputError(
        `A landscape direction has ${d.size} entries but the model has ${op.size} parameters.`,
      );
    }
  }
  const original = op.vars.map((v) => v.clone());
  const split = directions.map((d) => op.toVariables(d));
  const losses: number[] = [];
  try {
    for (const point of points) {
      op.vars.forEach((v, i) => {
        const moved = tf.tidy(() =>
          point.reduce<tf.Tensor>((w, c, k) => tf.add(w, tf.mul(split[k]![i]!, c)), original[i]!),
        );
        v.assign(moved);
        moved.dispose();
      });
      losses.push(await op.loss());
    }
  } finally {
    op.vars.forEach((v, i) => v.assign(original[i]!));
    tf.dispose([...original, ...split.flat()]);
  }
  return losses;
}

export async function lossLandscape1d(
  op: HessianOperator,
  direction: tf.Tensor1D,
  options: LandscapeOptions = {},
): Promise<Landscape1d> {
  const alphas = grid(options);
  const losses = await lossesAt(
    op,
    [direction],
    alphas.map((a) => [a]),
  );
  return { alphas, losses };
}

export async function lossLandscape2d(
  op: HessianOperator,
  first: tf.Tensor1D,
  second: tf.Tensor1D,
  options: LandscapeOptions = {},
): Promise<Landscape2d> {
  const alphas = grid(options);
  const betas = alphas.slice();
  const flat = await lossesAt(
    op,
    [first, second],
    alphas.flatMap((a) => betas.map((b) => [a, b])),
  );
  return {
    alphas,
    betas,
    losses: alphas.map((_, i) => flat.slice(i * betas.length, (i + 1) * betas.length)),
  };
}
