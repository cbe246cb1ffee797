/**
 * MaxPoolGrad and its transpose, MaxPoolGradTranspose, from the window winners of
 * max-pool-winners.ts: each window's dy goes to the first strict maximum of x in it (cpu's
 * rule; a window of only -Infinity/NaN gets none), and the transpose reads dxBar back from
 * the same positions.
 * wasm's stock kernel (4.22) starts its running maximum at 0, so a window whose values are
 * all negative sends its gradient to the window's first element instead of its maximum;
 * cpu's reads element by element through TensorBuffer.get and is ~10x slower than this.
 *
 * MaxPoolGradTranspose is ours (TF.js has no such kernel): inputs dxBar (the pool input's
 * shape), input and output, MaxPoolGrad's attributes; output[k] = dxBar[winner of window k].
 * MaxPoolGrad's second-order gradient uses it where it is registered (see
 * autodiff/gradients/pool.ts): one gather instead of a scatter of ones, a product and a
 * window sum over the whole input.
 */
import * as tf from '@tensorflow/tfjs';
import { asBackend, readValues, writeTensor } from './backend-access.js';
import { assertShape } from './conv2d-backprop-filter.js';
import {
  gatherFromWinners,
  maxPoolInfo,
  scatterToWinners,
  winnersFor,
} from './max-pool-winners.js';

export const MAX_POOL_GRAD_TRANSPOSE = 'MaxPoolGradTranspose';

function checkRank4(kernelName: string, x: tf.TensorInfo): void {
  if (x.shape.length !== 4) {
    throw new Error(
      `${kernelName}: expected a rank-4 NHWC input, got shape [${x.shape.join(',')}].`,
    );
  }
}

export function makeMaxPoolGrad(): tf.KernelFunc {
  return ({ inputs, backend: anyBackend, attrs = {} }) => {
    const backend = asBackend(anyBackend);
    const dy = inputs['dy']!;
    const x = inputs['input']!;
    checkRank4('MaxPoolGrad', x);
    const info = maxPoolInfo(x.shape, attrs);
    assertShape('MaxPoolGrad', 'dy', dy.shape, info.outShape);
    const winners = winnersFor(
      x,
      inputs['output'],
      info,
      (t) => readValues(backend, t) as Float32Array,
    );
    // Float32 accumulation: an element receives one term per window that picks it (few).
    const dx = new Float32Array(tf.util.sizeFromShape(x.shape));
    scatterToWinners(winners, readValues(backend, dy) as Float32Array, dx);
    return writeTensor(backend, x.shape, 'float32', dx);
  };
}

export function makeMaxPoolGradTranspose(): tf.KernelFunc {
  return ({ inputs, backend: anyBackend, attrs = {} }) => {
    const backend = asBackend(anyBackend);
    const dxBar = inputs['dxBar']!;
    const x = inputs['input']!;
    checkRank4(MAX_POOL_GRAD_TRANSPOSE, x);
    assertShape(MAX_POOL_GRAD_TRANSPOSE, 'dxBar', dxBar.shape, x.shape);
    const info = maxPoolInfo(x.shape, attrs);
    const winners = winnersFor(
      x,
      inputs['output'],
      info,
      (t) => readValues(backend, t) as Float32Array,
    );
    const out = new Float32Array(winners.length);
    gatherFromWinners(winners, readValues(backend, dxBar) as Float32Array, out);
    return writeTensor(backend, info.outShape, 'float32', out);
  };
}
