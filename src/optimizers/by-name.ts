/**
 * Every optimizer the project compares, built by name (for the CLI and benchmarks), so that
 * comparisons share one roof: same variables, same loss function, same minimize() call.
 */
import * as tf from '@tensorflow/tfjs';
import { AdaHessian } from './adahessian.js';
import type { AdaHessianConfig } from './adahessian-config.js';
import { AdamW, type AdamWConfig } from './adamw.js';

export const OPTIMIZER_NAMES = [
  'adahessian',
  'sgd',
  'momentum',
  'adam',
  'adamw',
  'adagrad',
  'rmsprop',
] as const;

export type OptimizerName = (typeof OPTIMIZER_NAMES)[number];

/** Learning rates used when none is given: each method's usual default. */
export const DEFAULT_LEARNING_RATES: Readonly<Record<OptimizerName, number>> = {
  adahessian: 0.15,
  sgd: 0.01,
  momentum: 0.01,
  adam: 0.001,
  adamw: 0.001,
  adagrad: 0.01,
  rmsprop: 0.001,
};

export interface OptimizerOptions {
  /** Momentum of 'momentum' (default 0.9). */
  momentum?: number;
  /** Decoupled weight decay of 'adamw' and 'adahessian'. */
  weightDecay?: number;
  /** Further AdaHessian settings (betas, hessianPower, hessianEvery, seed, ...). */
  adahessian?: Omit<AdaHessianConfig, 'learningRate'>;
}

export function isOptimizerName(name: string): name is OptimizerName {
  return (OPTIMIZER_NAMES as readonly string[]).includes(name);
}

/**
 * The optimizer called `name` with `learningRate` (default DEFAULT_LEARNING_RATES[name]).
 * 'sgd' is plain SGD, 'momentum' SGD with momentum; adam, adagrad and rmsprop are TF.js's own.
 */
export function optimizerByName(
  name: string,
  learningRate?: number,
  options: OptimizerOptions = {},
): tf.Optimizer {
  if (!isOptimizerName(name)) {
    throw new RangeError(
      `Unknown optimizer '${name}'; expected one of ${OPTIMIZER_NAMES.join(', ')}.`,
    );
  }
  const lr = learningRate ?? DEFAULT_LEARNING_RATES[name];
  if (typeof lr !== 'number' || !Number.isFinite(lr) || lr <= 0) {
    throw new RangeError(`The learning rate must be a finite number > 0, got ${String(lr)}.`);
  }
  switch (name) {
    case 'adahessian':
      return new AdaHessian({
        ...options.adahessian,
        ...(options.weightDecay != null ? { weightDecay: options.weightDecay } : {}),
        learningRate: lr,
      });
    case 'sgd':
      return tf.train.sgd(lr);
    case 'momentum':
      return momentumSgd(lr, options.momentum ?? 0.9);
    case 'adam':
      return tf.train.adam(lr);
    case 'adamw': {
      const config: AdamWConfig = { learningRate: lr };
      if (options.weightDecay != null) config.weightDecay = options.weightDecay;
      return new AdamW(config);
    }
    case 'adagrad':
      return tf.train.adagrad(lr);
    case 'rmsprop':
      return tf.train.rmsprop(lr);
  }
}

/**
 * tf.train.momentum whose dispose also frees its learning-rate scalar: TF.js 4.22's
 * MomentumOptimizer.dispose replaces SGDOptimizer's without calling it, so each momentum
 * optimizer leaked one tensor (`c`, -learningRate). Disposing it twice is harmless, should a
 * later TF.js fix this.
 */
function momentumSgd(learningRate: number, momentum: number): tf.MomentumOptimizer {
  const optimizer = tf.train.momentum(learningRate, momentum);
  const disposeSlots = optimizer.dispose.bind(optimizer);
  optimizer.dispose = () => {
    disposeSlots();
    (optimizer as unknown as { c: tf.Scalar }).c.dispose();
  };
  return optimizer;
}
