/**
 * An optional faster AdaHessian update for one backend: the whole per-variable update (both
 * moments, |D| with its spatial averaging, the step) as one pass over the values, instead of
 * ~15 tensor ops, each a kernel call and an allocation. The native path (src/native) installs
 * one for the cpu backend; with none installed, AdaHessian uses its tensor ops. An
 * implementation must agree with the ops to float32 rounding.
 */
import type * as tf from '@tensorflow/tfjs';
import { perBackend } from './per-backend.js';
import type { AveragingMode } from './spatial-average.js';

export interface FusedUpdateInput {
  w: tf.Tensor;
  g: tf.Tensor;
  m: tf.Tensor;
  v: tf.Tensor;
  /** The signed Hessian diagonal estimate, or null on a step that reuses v. */
  diagonal: tf.Tensor | null;
  averaging: AveragingMode;
  beta1: number;
  beta2: number;
  /** Bias corrections 1 - beta1^t and 1 - beta2^n. */
  biasCorrection1: number;
  biasCorrection2: number;
  learningRate: number;
  epsilon: number;
  weightDecay: number;
  hessianPower: number;
}

/** New tensors for w, m and (on Hessian steps) v; the caller assigns and disposes them. */
export interface FusedUpdateOutput {
  w: tf.Tensor;
  m: tf.Tensor;
  v: tf.Tensor | null;
}

export interface FusedAdaHessianUpdate {
  /** True when every entry of every tensor is finite; false sends the caller to its checks. */
  allFinite(tensors: readonly tf.Tensor[]): boolean;
  /** The update, or null when this implementation does not handle the input (e.g. a dtype). */
  update(input: FusedUpdateInput): FusedUpdateOutput | null;
}

const updates = perBackend<FusedAdaHessianUpdate>();

/** Installs `update` for `backendName`; returns how to remove it again. */
export const installFusedAdaHessianUpdate = updates.install;

export const fusedAdaHessianUpdateFor = updates.get;
