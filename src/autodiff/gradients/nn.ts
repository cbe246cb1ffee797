/**
 * Second-order support for the kernels that dense, normalization, embedding, recurrent and
 * attention models and the losses use.
 *
 * The comparison and logical kernels (Greater, Equal, LogicalAnd, ...) appear inside the
 * stock gradients of max, min, maximum, minimum, clipByValue, selu, leakyRelu, prelu,
 * relu6 and pow: a second derivative passes through them, and stock TF.js has no gradient
 * for them, so it throws. They are piecewise constant, so their gradient is zero; we
 * register exactly that. The other kernels' stock gradients are built from taped ops whose
 * own gradients are correct; they are marked verified after the finite-difference cases in
 * cases/nn.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { markSecondOrderVerified } from '../verified-kernels.js';

/** Piecewise-constant kernels with two inputs, a and b. */
const BINARY_PIECEWISE_CONSTANT = [
  'Equal',
  'NotEqual',
  'Greater',
  'GreaterEqual',
  'Less',
  'LessEqual',
  'LogicalAnd',
  'LogicalOr',
];

/** What this module marks verified; each is on the path of some case in cases/nn.ts. */
export const NN_VERIFIED_KERNELS: readonly string[] = [
  ...BINARY_PIECEWISE_CONSTANT,
  'LogicalNot',
  'Select',
  'Max',
  'Min',
  'Maximum',
  'Minimum',
  'ClipByValue',
  'Abs',
  'Pow',
  'GatherV2',
  'UnsortedSegmentSum',
  'FusedBatchNorm',
  // tf.fused.matMul with a linear activation (tf.layers dense, the recurrent cells) is a
  // tf.customGrad op: its node carries the op's scope name, not a kernel name.
  'fusedMatMul__op',
];

let registered = false;

export function registerNnGradients(): void {
  if (registered) return;
  for (const kernelName of BINARY_PIECEWISE_CONSTANT) registerZeroGradient(kernelName, ['a', 'b']);
  registerZeroGradient('LogicalNot', ['x']);
  markSecondOrderVerified(...NN_VERIFIED_KERNELS);
  registered = true;
}

/**
 * A zero gradient for each input. The inputs are saved only for their shapes (the output
 * may be broadcast); the engine keeps them with the tape (shared on cpu, a copy on wasm).
 */
function registerZeroGradient(kernelName: string, inputNames: string[]): void {
  tf.registerGradient({
    kernelName,
    inputsToSave: inputNames,
    gradFunc: (_dy, saved) => {
      const grads: Record<string, () => tf.Tensor> = {};
      inputNames.forEach((name, i) => {
        // float32 whatever the input's dtype: the engine requires float32 gradients.
        grads[name] = () => tf.zeros(saved[i]!.shape, 'float32');
      });
      return grads;
    },
  });
}
