import type * as tf from '@tensorflow/tfjs';

/** A problem whose Hessian-vector product we check against finite differences. */
export interface SecondOrderProblem {
  lossFn: () => tf.Scalar;
  vars: tf.Variable[];
  /** Frees the variables and constant tensors the problem made. */
  dispose(): void;
}

/** One row of the coverage table: an op, layer or loss, built from a fixed seed. */
export interface SecondOrderCase {
  /** Row label, e.g. 'conv2d same, stride 2'. */
  name: string;
  /** Section of the coverage table. */
  group:
    | 'ops'
    | 'activations'
    | 'conv'
    | 'normalization'
    | 'recurrent'
    | 'attention'
    | 'losses'
    | 'layers'
    | 'models';
  /** Builds the problem on the current backend. */
  build(): SecondOrderProblem;
  /** Backends where this case is not claimed (e.g. a kernel the backend lacks); default none. */
  skipBackends?: string[];
}
