/**
 * Typed access to the few private parts of the TensorFlow.js engine that second-order
 * autodiff needs: the active tape, the tape depth counters and `addTapeNode`.
 * They are stable across 4.x but private, so we refuse unverified versions (see install.ts).
 */
import * as tf from '@tensorflow/tfjs';

/** A node of the engine's gradient tape (mirrors tfjs-core's private `TapeNode`). */
export interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  saved?: tf.Tensor[];
  gradient?: (dys: tf.Tensor[]) => Record<string, () => tf.Tensor>;
}

interface EngineState {
  activeTape: TapeNode[] | null;
  gradientDepth: number;
  kernelDepth: number;
}

/** The private engine surface we use. */
export interface PrivateEngine {
  state: EngineState;
  backendName: string;
  startTape(): void;
  endTape(): void;
  tidy<T extends tf.TensorContainer>(f: () => T): T;
  addTapeNode(
    kernelName: string,
    inputs: Record<string, tf.Tensor>,
    outputs: tf.Tensor[],
    gradientsFunc: unknown,
    saved: tf.Tensor[],
    attrs: unknown,
  ): void;
  gradients(
    f: () => tf.Tensor,
    xs: tf.Tensor[],
    dy?: tf.Tensor,
    allowNoGradients?: boolean,
  ): { value: tf.Tensor; grads: (tf.Tensor | undefined)[] };
}

export function privateEngine(): PrivateEngine {
  return tf.engine() as unknown as PrivateEngine;
}
