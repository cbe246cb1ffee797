/**
 * An optional faster AdamW update for one backend, like fused-update.ts for AdaHessian: the
 * whole per-variable update (both moments, bias corrections, decoupled decay, the step) as
 * one pass over the values instead of ~12 tensor ops. The native path (src/native) installs
 * one for the cpu backend; with none installed, AdamW uses its tensor ops. An implementation
 * must give the ops' results (the cpu one rounds as each op does, so they are bit for bit).
 */
import type * as tf from '@tensorflow/tfjs';
import { perBackend } from './per-backend.js';

export interface FusedAdamWInput {
  w: tf.Tensor;
  g: tf.Tensor;
  m: tf.Tensor;
  v: tf.Tensor;
  beta1: number;
  beta2: number;
  /** 1 - beta1^t and 1 - beta2^t. */
  biasCorrection1: number;
  biasCorrection2: number;
  learningRate: number;
  epsilon: number;
  weightDecay: number;
}

/** New tensors for w, m and v; the caller assigns and disposes them. */
export interface FusedAdamWOutput {
  w: tf.Tensor;
  m: tf.Tensor;
  v: tf.Tensor;
}

export interface FusedAdamWUpdate {
  /** The update, or null when this implementation does not handle the input (e.g. a dtype). */
  update(input: FusedAdamWInput): FusedAdamWOutput | null;
}

const updates = perBackend<FusedAdamWUpdate>();

/** Installs `update` for `backendName`; returns how to remove it again. */
export const installFusedAdamWUpdate = updates.install;

export const fusedAdamWUpdateFor = updates.get;
