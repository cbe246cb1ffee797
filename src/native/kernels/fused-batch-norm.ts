/**
 * FusedBatchNorm (tf.batchNorm: offset + (x - mean) * scale / sqrt(variance + eps)) as one
 * ONNX graph. tf.layers' LayerNormalization, the transformer's, tiles its moments, scale and
 * offset to the input's full shape and calls tf.batchNorm on [1, B, T, d]; TF.js's cpu kernel
 * walks five arrays with a modulo index and a Math.sqrt per element (~37 ms a call for the
 * transformer's [1, 64, 64, 64] on a loaded machine, 10 % of an Adam step). ONNX Runtime's
 * broadcasting Sub, Mul, Div, Sqrt and Add are vectorised. Results agree to float32 rounding
 * (TF.js computes the expression in double and rounds once).
 *
 * TF.js cycles each parameter's values over x's flattened values; that is numpy broadcasting
 * only when the parameter's shape, without leading 1s, is a suffix of x's shape. Other shapes
 * (and small inputs) are left to TF.js's kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { MIN_ELEMENTWISE_SIZE } from './elementwise.js';
import { allFloat32, type NativeKernel, type NativePlan } from './types.js';

/** Whether cycling `param` over x's flat values is broadcasting it to x's shape. */
function broadcastsLikeCycling(param: readonly number[], x: readonly number[]): boolean {
  let start = 0;
  while (start < param.length && param[start] === 1) start++;
  const core = param.slice(start);
  if (core.length > x.length) return false;
  return core.every((d, i) => d === x[x.length - core.length + i]);
}

export const fusedBatchNormKernel: NativeKernel = {
  kernelName: 'FusedBatchNorm',
  plan(inputs, attrs): NativePlan | null {
    const { x, mean, variance, scale, offset } = inputs;
    if (x == null || mean == null || variance == null) return null;
    if (!allFloat32(x, mean, variance, scale, offset)) return null;
    if (tf.util.sizeFromShape(x.shape) < MIN_ELEMENTWISE_SIZE) return null;
    const params = [mean, variance, scale, offset].filter((t): t is tf.TensorInfo => t != null);
    if (!params.every((p) => broadcastsLikeCycling(p.shape, x.shape))) return null;
    const epsilon = (attrs['varianceEpsilon'] as number | undefined) ?? 0.001;
    const shapes = [x, mean, variance, scale, offset].map((t) => t?.shape.join(',') ?? '-');
    const key = `FusedBatchNorm|${shapes.join('|')}|${epsilon}`;
    const graphInputs = [
      { name: 'x', info: x },
      { name: 'mean', info: mean },
      { name: 'variance', info: variance },
      ...(scale != null ? [{ name: 'scale', info: scale }] : []),
      ...(offset != null ? [{ name: 'offset', info: offset }] : []),
    ];
    const build = () => ({
      nodes: [
        { opType: 'Sub', inputs: ['x', 'mean'], outputs: ['centred'] },
        ...(scale != null
          ? [{ opType: 'Mul', inputs: ['centred', 'scale'], outputs: ['scaled'] }]
          : [{ opType: 'Identity', inputs: ['centred'], outputs: ['scaled'] }]),
        { opType: 'Add', inputs: ['variance', 'epsilon'], outputs: ['shifted'] },
        { opType: 'Sqrt', inputs: ['shifted'], outputs: ['deviation'] },
        {
          opType: 'Div',
          inputs: ['scaled', 'deviation'],
          outputs: offset != null ? ['normalised'] : ['y'],
        },
        ...(offset != null
          ? [{ opType: 'Add', inputs: ['offset', 'normalised'], outputs: ['y'] }]
          : []),
      ],
      initializers: [{ name: 'epsilon', values: [epsilon], float: true }],
      inputs: graphInputs.map((g) => ({ name: g.name, shape: g.info.shape })),
      outputs: [{ name: 'y', shape: x.shape }],
    });
    return {
      key,
      build,
      inputs: graphInputs.map((g) => g.info),
      inputShapes: graphInputs.map((g) => g.info.shape),
      outShape: x.shape,
    };
  },
};
