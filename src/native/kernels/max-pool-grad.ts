/**
 * MaxPoolGrad and MaxPoolGradTranspose for NHWC float32 on the native path: the same window
 * winners (and the same cache) as the fast kernels of src/kernels/max-pool-grad.ts, so the
 * results are those kernels' bit for bit, with inputs read and outputs taken through the
 * native output pool. ONNX has no MaxPoolGrad, so these run in JS.
 */
import * as tf from '@tensorflow/tfjs';
import {
  gatherFromWinners,
  maxPoolInfo,
  scatterToWinners,
  winnersFor,
} from '../../kernels/max-pool-winners.js';
import { MAX_POOL_GRAD_TRANSPOSE } from '../../kernels/max-pool-grad.js';
import type { PendingMasked } from './elementwise.js';
import type { DirectKernel } from './types.js';

/** What a deferred MaxPoolGrad output is: dx[winners[k]] = dy[k], zeros elsewhere. */
export interface MaxPoolGradInfo {
  kind: 'MaxPoolGrad';
  /** Flat input index per output element (-1: none); no index twice. */
  winners: Int32Array;
  dy: tf.TensorInfo;
}

export const maxPoolGradKernel: DirectKernel = {
  kernelName: 'MaxPoolGrad',
  run(inputs, attrs, backend, buffers) {
    const { dy, input } = inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
    if (dy.dtype !== 'float32' || input.dtype !== 'float32' || input.shape.length !== 4) {
      return null;
    }
    const info = maxPoolInfo(input.shape, attrs);
    if (!tf.util.arraysEqual(dy.shape, info.outShape)) return null;
    const winners = winnersFor(input, inputs['output'], info, (t) =>
      buffers.read(backend, t.dataId),
    );
    const size = input.shape.reduce((a, b) => a * b, 1);
    const fill = (dx: Float32Array) => {
      dx.fill(0);
      scatterToWinners(winners, buffers.read(backend, dy.dataId), dx);
    };
    if (info.strideHeight >= info.filterHeight && info.strideWidth >= info.filterWidth) {
      // Windows do not overlap, so each input element is some window's winner at most once:
      // deferred, a product with relu's mask (the next op of a conv-relu-pool gradient) can
      // be taken from dy and the winners directly (see multiplyKernel).
      const pending: MaxPoolGradInfo = { kind: 'MaxPoolGrad', winners, dy };
      const deferred = buffers.deferred(backend, input.shape, fill, [dy], pending);
      if (deferred != null) return deferred;
    }
    const dx = buffers.take(size);
    fill(dx);
    return buffers.output(backend, input.shape, dx);
  },
};

export const maxPoolGradTransposeKernel: DirectKernel = {
  kernelName: MAX_POOL_GRAD_TRANSPOSE,
  run(inputs, attrs, backend, buffers) {
    const { dxBar, input } = inputs as { dxBar: tf.TensorInfo; input: tf.TensorInfo };
    if (dxBar.dtype !== 'float32' || input.dtype !== 'float32' || input.shape.length !== 4) {
      return null;
    }
    if (!tf.util.arraysEqual(dxBar.shape, input.shape)) return null;
    const info = maxPoolInfo(input.shape, attrs);
    const winners = winnersFor(input, inputs['output'], info, (t) =>
      buffers.read(backend, t.dataId),
    );
    const out = buffers.take(winners.length);
    const masked = buffers.pendingInfo(dxBar.dataId) as PendingMasked | undefined;
    if (masked?.kind === 'Masked') {
      // dxBar = values * mask, still pending: the product at the winners only, as Multiply
      // would give it there.
      const v = buffers.read(backend, masked.values.dataId);
      const m = buffers.read(backend, masked.mask.dataId);
      for (let k = 0; k < winners.length; k++) {
        const at = winners[k]!;
        out[k] = at >= 0 ? v[at]! * m[at]! : 0;
      }
      buffers.countFused();
    } else {
      gatherFromWinners(winners, buffers.read(backend, dxBar.dataId), out);
    }
    return buffers.output(backend, info.outShape, out);
  },
};
