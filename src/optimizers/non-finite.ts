/**
 * Refusing NaN and Inf before anything is updated. One scalar is downloaded per step: the
 * sum of x * 0 over every tensor, which is 0 when all entries are finite and NaN otherwise.
 */
import * as tf from '@tensorflow/tfjs';
import { addAll } from '../util/add-all.js';

/** Thrown before a step changes anything, naming what was not finite. */
export class NonFiniteError extends Error {
  override name = 'NonFiniteError';
}

export interface NamedCheck {
  /** e.g. "the gradient of 'dense/kernel'" */
  what: string;
  tensor: tf.Tensor;
}

export function assertAllFinite(checks: readonly NamedCheck[], context: string): void {
  if (checks.length === 0) return;
  if (Number.isFinite(nanUnlessFinite(checks.map((c) => c.tensor)))) return;
  const bad = checks.find((c) => !Number.isFinite(nanUnlessFinite([c.tensor])))!;
  const values = Array.from(bad.tensor.dataSync() as Float32Array);
  const count = values.reduce((n, x) => n + (Number.isFinite(x) ? 0 : 1), 0);
  const example = values.find((x) => !Number.isFinite(x));
  throw new NonFiniteError(
    `${context}: ${bad.what} has ${count} non-finite ${count === 1 ? 'entry' : 'entries'} (e.g. ${example}); ` +
      'nothing was updated (weights and optimizer state are as before this step).',
  );
}

/** True when every entry of every tensor is finite: one reduction, one scalar downloaded. */
export function allFinite(tensors: readonly tf.Tensor[]): boolean {
  return tensors.length === 0 || Number.isFinite(nanUnlessFinite(tensors));
}

function nanUnlessFinite(tensors: readonly tf.Tensor[]): number {
  return tf.tidy(() => addAll(tensors.map((t) => tf.sum(tf.mul(t, 0)))).dataSync()[0]!);
}
