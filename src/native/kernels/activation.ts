/**
 * The fused activations of _FusedMatMul and FusedConv2D as ONNX nodes, matching TF.js's
 * applyActivation. relu6 would need float Clip bounds as graph tensors; it falls back.
 */
import type * as tf from '@tensorflow/tfjs';
import type { OnnxNode } from '../onnx-model.js';
import { float } from './types.js';

export interface ActivationPlan {
  /** Nodes from `from` to `to`; empty for 'linear' (then the caller uses `from` as the output). */
  nodes: (from: string, to: string) => OnnxNode[];
  /** Part of the cache key. */
  key: string;
  /** prelu's weights, an extra graph input named 'alpha'. */
  preluWeights?: tf.TensorInfo;
}

/** The activation plan, or null when it is not supported natively. */
export function planActivation(
  attrs: tf.NamedAttrMap,
  preluWeights: tf.TensorInfo | undefined,
): ActivationPlan | null {
  const activation = (attrs['activation'] as string | undefined) ?? 'linear';
  const alpha = (attrs['leakyreluAlpha'] as number | undefined) ?? 0.2;
  const single = (opType: string, attributes = {}) => ({
    nodes: (from: string, to: string) => [{ opType, inputs: [from], outputs: [to], attributes }],
    key: `${opType}${JSON.stringify(attributes)}`,
  });
  switch (activation) {
    case 'linear':
      return { nodes: () => [], key: 'linear' };
    case 'relu':
      return single('Relu');
    case 'sigmoid':
      return single('Sigmoid');
    case 'elu':
      return single('Elu', { alpha: float(1) });
    case 'leakyrelu':
      return single('LeakyRelu', { alpha: float(alpha) });
    case 'prelu':
      if (preluWeights == null || preluWeights.dtype !== 'float32') return null;
      return {
        nodes: (from, to) => [{ opType: 'PRelu', inputs: [from, 'alpha'], outputs: [to] }],
        key: `prelu[${preluWeights.shape.join(',')}]`,
        preluWeights,
      };
    default:
      return null;
  }
}
