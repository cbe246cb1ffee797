/**
 * The small pieces that Adam-style optimizers are made of, written as the maths reads.
 * Each takes tensors and returns a new tensor; the caller owns state and tidies.
 */
import * as tf from '@tensorflow/tfjs';

/** beta * previous + (1 - beta) * x: an exponential moving average started at zero. */
export function movingAverage(previous: tf.Tensor, x: tf.Tensor, beta: number): tf.Tensor {
  return tf.add(tf.mul(previous, beta), tf.mul(x, 1 - beta));
}

/** 1 - beta^count: what dividing by undoes the zero start after `count` updates. */
export function biasCorrection(beta: number, count: number): number {
  return 1 - Math.pow(beta, count);
}

/** w - lr * (direction + weightDecay * w): decoupled weight decay (Loshchilov and Hutter). */
export function decoupledStep(
  w: tf.Tensor,
  direction: tf.Tensor,
  learningRate: number,
  weightDecay: number,
): tf.Tensor {
  const update = weightDecay === 0 ? direction : tf.add(direction, tf.mul(w, weightDecay));
  return tf.sub(w, tf.mul(update, learningRate));
}
