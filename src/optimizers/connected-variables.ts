/**
 * Which variables the loss actually depends on. A Hessian-vector product fills in zeros for
 * the others, but an optimizer must skip them (as TF.js's own optimizers do for a missing
 * gradient), or weight decay and stale momentum would move weights the loss never used.
 * We read this off the forward tape while it is being recorded, at no extra cost.
 */
import * as tf from '@tensorflow/tfjs';
import { filterTape } from '../autodiff/backprop.js';
import { privateEngine } from '../autodiff/engine.js';

export interface ConnectivityProbe {
  /** `lossFn`, unchanged in value, noting which of `vars` lead to the loss. */
  lossFn: () => tf.Scalar;
  /** One flag per variable, read after `lossFn` ran under a gradient tape; null before. */
  connected(): boolean[] | null;
}

export function probeConnectivity(
  lossFn: () => tf.Scalar,
  vars: readonly tf.Variable[],
): ConnectivityProbe {
  let flags: boolean[] | null = null;
  return {
    lossFn: () => {
      const loss = lossFn();
      const tape = privateEngine().state.activeTape;
      if (tape != null && loss instanceof tf.Tensor) {
        const used = new Set<number>([loss.id]);
        for (const node of filterTape(tape, [...vars], loss)) {
          for (const t of Object.values(node.inputs)) used.add(t.id);
        }
        flags = vars.map((v) => used.has(v.id));
      }
      return loss;
    },
    connected: () => flags,
  };
}
