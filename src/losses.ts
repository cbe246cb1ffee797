/**
 * Losses whose second derivatives are exact, for use inside gradAndHvp and the optimizers.
 *
 * Why not tf.losses: `tf.losses.softmaxCrossEntropy` is a tf.customGrad op that keeps its
 * softmax off the gradient tape, so differentiating its gradient silently drops terms (a
 * Hessian-vector product through it raises UnsupportedSecondOrderError instead). These are
 * built from ordinary ops whose second derivatives are verified against finite differences.
 *
 * Reduction (the same as tf.losses' default, SUM_BY_NONZERO_WEIGHTS with no weights): every
 * loss returns a float32 scalar, the mean of the per-element loss over all elements. For
 * softmaxCrossEntropy the class axis (the last) is summed first, so it is the mean over the
 * examples, where every axis but the last indexes an example.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Mean over examples of -sum_c labels_c * log softmax(logits)_c, computed as
 * logits - logSumExp(logits) (shifted by the max, so large logits do not overflow).
 * `labels` are one-hot rows or probability distributions, the same shape as `logits`.
 */
export function softmaxCrossEntropy(labels: tf.Tensor, logits: tf.Tensor): tf.Scalar {
  checkPair('softmaxCrossEntropy', labels, 'labels', logits, 'logits');
  return tf.tidy(() => {
    const z = tf.cast(logits, 'float32');
    const logProbs = tf.sub(z, tf.logSumExp(z, -1, true));
    const perExample = tf.neg(tf.sum(tf.mul(tf.cast(labels, 'float32'), logProbs), -1));
    return tf.mean(perExample) as tf.Scalar;
  });
}

/**
 * Mean over elements of the binary cross-entropy of sigmoid(logits) against `labels` in
 * [0, 1], in the overflow-free form max(x, 0) - x z + log(1 + exp(-|x|)).
 */
export function sigmoidCrossEntropy(labels: tf.Tensor, logits: tf.Tensor): tf.Scalar {
  checkPair('sigmoidCrossEntropy', labels, 'labels', logits, 'logits');
  return tf.tidy(() => {
    const x = tf.cast(logits, 'float32');
    const z = tf.cast(labels, 'float32');
    const perElement = tf.add(
      tf.sub(tf.relu(x), tf.mul(x, z)),
      tf.log1p(tf.exp(tf.neg(tf.abs(x)))),
    );
    return tf.mean(perElement) as tf.Scalar;
  });
}

/** Mean over elements of (predictions - labels)^2. */
export function meanSquaredError(labels: tf.Tensor, predictions: tf.Tensor): tf.Scalar {
  checkPair('meanSquaredError', labels, 'labels', predictions, 'predictions');
  return tf.tidy(
    () =>
      tf.mean(
        tf.squaredDifference(tf.cast(predictions, 'float32'), tf.cast(labels, 'float32')),
      ) as tf.Scalar,
  );
}

/**
 * Mean over elements of the Huber loss of e = predictions - labels: e^2 / 2 where
 * |e| <= delta, delta (|e| - delta / 2) beyond. Its second derivative is 1 inside the band
 * and 0 outside; at |e| = delta exactly it jumps, so there the Hessian is one-sided.
 */
export function huberLoss(labels: tf.Tensor, predictions: tf.Tensor, delta = 1): tf.Scalar {
  checkPair('huberLoss', labels, 'labels', predictions, 'predictions');
  if (!(typeof delta === 'number' && Number.isFinite(delta) && delta > 0)) {
    throw new Error(`huberLoss: delta must be a finite number > 0, got ${String(delta)}.`);
  }
  return tf.tidy(() => {
    const absError = tf.abs(tf.sub(tf.cast(predictions, 'float32'), tf.cast(labels, 'float32')));
    const quadratic = tf.minimum(absError, delta);
    const linear = tf.sub(absError, quadratic);
    const perElement = tf.add(tf.mul(0.5, tf.square(quadratic)), tf.mul(delta, linear));
    return tf.mean(perElement) as tf.Scalar;
  });
}

function checkPair(fn: string, a: unknown, aName: string, b: unknown, bName: string): void {
  for (const [t, name] of [
    [a, aName],
    [b, bName],
  ] as const) {
    if (!(t instanceof tf.Tensor)) throw new Error(`${fn}: ${name} must be a tf.Tensor.`);
    if (t.size === 0) throw new Error(`${fn}: ${name} is empty (shape [${t.shape.join(', ')}]).`);
  }
  const ta = a as tf.Tensor;
  const tb = b as tf.Tensor;
  if (!tf.util.arraysEqual(ta.shape, tb.shape)) {
    throw new Error(
      `${fn}: ${aName} has shape [${ta.shape.join(', ')}] but ${bName} has shape ` +
        `[${tb.shape.join(', ')}]; they must match.`,
    );
  }
  if (fn === 'softmaxCrossEntropy' && tb.rank === 0) {
    throw new Error(`${fn}: ${bName} must have a class axis (rank >= 1), got a scalar.`);
  }
}
