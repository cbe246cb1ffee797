/**
 * The hook AdaHessian's minimize calls (browser-safe: no native import here). With a provider
 * installed (enableStepGraphs() in ./enable.ts, Node only), the loss, gradients and Hutchinson
 * diagonal of a step may come from one replayed ONNX graph (see step-graph.ts); the provider
 * returns null whenever the step should run op by op, which the caller then does as before.
 */
import type * as tf from '@tensorflow/tfjs';

/** What minimize uses: grads and diagonal are null for variables the loss does not depend on. */
export interface StepGraphEstimate {
  loss: tf.Scalar;
  grads: (tf.Tensor | null)[];
  diagonal: (tf.Tensor | null)[] | null;
}

export interface StepGraphProvider {
  /**
   * Loss, gradients and the Hutchinson diagonal over `probes` (one list per sample, one tensor
   * per variable), or null to run op by op. `owner` keys the compiled graphs (the optimizer).
   */
  hutchinson(
    owner: object,
    f: () => tf.Scalar,
    vars: tf.Variable[],
    probes: tf.Tensor[][],
  ): StepGraphEstimate | null;
  /** Loss and gradients (a first-order or delayed-Hessian step), or null to run op by op. */
  gradient(owner: object, f: () => tf.Scalar, vars: tf.Variable[]): StepGraphEstimate | null;
  /**
   * Makes a probe tensor of `shape` that `fill` writes, its array reused from earlier steps'
   * probes where nothing else read them (src/native/recycled-arrays.ts); absent: new arrays.
   */
  probeTensor?(shape: number[], fill: (out: Float32Array) => void): tf.Tensor;
}

let provider: StepGraphProvider | null = null;

/** The installed provider for the active backend, or null. */
export function stepGraphProvider(): StepGraphProvider | null {
  return provider;
}

/** Installs `p` (replacing any); returns how to remove it. */
export function installStepGraphProvider(p: StepGraphProvider): () => void {
  provider = p;
  return () => {
    if (provider === p) provider = null;
  };
}
