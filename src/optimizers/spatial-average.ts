/**
 * Spatial averaging of the Hessian diagonal (AdaHessian's "block size"): each entry of D is
 * replaced by the mean over its block, which smooths the noisy Hutchinson estimate.
 *
 * Layouts are TF.js's, channels last: dense kernel [in, out], conv1d [k, in, out], conv2d
 * [kh, kw, in, out], depthwise [kh, kw, in, multiplier], conv3d [kd, kh, kw, in, out]. The
 * spatial axes are therefore every axis but the last two (PyTorch's [out, in, kh, kw] has
 * them last; copying its axes here would average over channels instead).
 */
import * as tf from '@tensorflow/tfjs';

/**
 * - 'none': leave D as it is.
 * - 'spatial': mean over the kernel's spatial positions (every axis but the last two), so one
 *   value per (in, out) channel pair. For tensors of rank 3 and more.
 * - { blockSize: b }: mean over runs of b consecutive entries along axis 0 (a dense kernel's
 *   input axis), separately for every index of the other axes; a last, shorter run is
 *   averaged on its own. For a dense kernel [in, out] this is PyTorch's contiguous blocks
 *   of its [out, in] weight.
 */
export type AveragingMode = 'none' | 'spatial' | { blockSize: number };

/** Averaging mode by tensor rank; ranks not named use DEFAULT_SPATIAL_AVERAGING, then 'none'. */
export type SpatialAveraging = Partial<Record<number, AveragingMode>>;

/**
 * As the official code: biases and dense kernels alone, conv kernels over their spatial
 * positions (the official code handles only rank 4; ranks 3 and 5 extend it the same way).
 */
export const DEFAULT_SPATIAL_AVERAGING: Readonly<Record<number, AveragingMode>> = {
  3: 'spatial',
  4: 'spatial',
  5: 'spatial',
};

export function averagingModeFor(rank: number, config: SpatialAveraging = {}): AveragingMode {
  return config[rank] ?? DEFAULT_SPATIAL_AVERAGING[rank] ?? 'none';
}

/** Throws a RangeError naming the first bad entry of a spatial-averaging config. */
export function validateSpatialAveraging(config: unknown): asserts config is SpatialAveraging {
  if (config == null || typeof config !== 'object' || Array.isArray(config)) {
    throw new RangeError(
      "spatialAveraging must be an object from tensor rank to 'none', 'spatial' or { blockSize }.",
    );
  }
  for (const [key, mode] of Object.entries(config)) {
    const rank = Number(key);
    if (!Number.isInteger(rank) || rank < 0) {
      throw new RangeError(`spatialAveraging keys are tensor ranks (0, 1, 2, ...); got '${key}'.`);
    }
    if (mode === 'none') continue;
    if (mode === 'spatial') {
      if (rank < 3) {
        throw new RangeError(
          `spatialAveraging[${rank}] = 'spatial' needs a kernel of rank 3 or more (spatial axes before [in, out]).`,
        );
      }
      continue;
    }
    const b = (mode as { blockSize?: unknown } | null)?.blockSize;
    if (typeof mode !== 'object' || typeof b !== 'number' || !Number.isInteger(b) || b < 1) {
      throw new RangeError(
        `spatialAveraging[${rank}] must be 'none', 'spatial' or { blockSize: positive integer }; got ${JSON.stringify(mode)}.`,
      );
    }
    if (rank === 0) throw new RangeError('spatialAveraging[0]: a scalar has no blocks to average.');
  }
}

/** D averaged as `mode` says; a new tensor of the same shape. */
export function spatialAverage(d: tf.Tensor, mode: AveragingMode): tf.Tensor {
  return tf.tidy(() => {
    if (mode === 'none') return d.clone();
    if (mode === 'spatial') {
      if (d.rank < 3)
        throw new RangeError(`'spatial' averaging needs rank >= 3, got rank ${d.rank}.`);
      const spatialAxes = Array.from({ length: d.rank - 2 }, (_, i) => i);
      return tf.broadcastTo(tf.mean(d, spatialAxes, true), d.shape);
    }
    return blockAverage(d, mode.blockSize);
  });
}

function blockAverage(d: tf.Tensor, b: number): tf.Tensor {
  const n = d.shape[0]!;
  const rest = d.size / n;
  const flat = tf.reshape(d, [n, rest]);
  const full = Math.floor(n / b) * b;
  const parts: tf.Tensor[] = [];
  if (full > 0) {
    const blocks = tf.reshape(tf.slice(flat, [0, 0], [full, rest]), [full / b, b, rest]);
    parts.push(
      tf.reshape(tf.broadcastTo(tf.mean(blocks, 1, true), [full / b, b, rest]), [full, rest]),
    );
  }
  if (full < n) {
    const tail = tf.slice(flat, [full, 0], [n - full, rest]);
    parts.push(tf.broadcastTo(tf.mean(tail, 0, true), [n - full, rest]));
  }
  return tf.reshape(parts.length === 1 ? parts[0]! : tf.concat(parts, 0), d.shape);
}
