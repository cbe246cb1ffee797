/**
 * AdaHessian's settings, their defaults (those of the official PyTorch implementation,
 * github.com/amirgholami/adahessian) and their validation.
 */
import { validateLearningRate, type LearningRate } from './learning-rate.js';
import { validateSpatialAveraging, type SpatialAveraging } from './spatial-average.js';

export interface AdaHessianConfig {
  /** Step size, or a schedule of the 1-based step. Default 0.15. */
  learningRate?: LearningRate;
  /** Decay of the gradient's moving average, in [0, 1). Default 0.9. */
  beta1?: number;
  /** Decay of the moving average of D^2, in [0, 1). Default 0.999. */
  beta2?: number;
  /** Added to the denominator, >= 0. Default 1e-4. */
  epsilon?: number;
  /** Decoupled weight decay: w -= lr * (update + weightDecay * w). Default 0. */
  weightDecay?: number;
  /** The Hessian power k in (0, 1]. Default 1. */
  hessianPower?: number;
  /** Averaging of D by tensor rank. Default: conv kernels (rank >= 3) over spatial positions. */
  spatialAveraging?: SpatialAveraging;
  /** Compute D every this many steps (the paper's f). Default 1. */
  hessianEvery?: number;
  /** Steps at the start that compute D every step whatever hessianEvery is. Default 0. */
  hessianWarmupSteps?: number;
  /** Hutchinson probes per estimate. Default 1 (the paper). */
  samples?: number;
  /** Seed of the probe generator, an integer in [0, 2^32 - 1]. Default: drawn at random. */
  seed?: number;
}

export type ResolvedAdaHessianConfig = Required<AdaHessianConfig>;

export const ADAHESSIAN_DEFAULTS = {
  learningRate: 0.15,
  beta1: 0.9,
  beta2: 0.999,
  epsilon: 1e-4,
  weightDecay: 0,
  hessianPower: 1,
  spatialAveraging: {},
  hessianEvery: 1,
  hessianWarmupSteps: 0,
  samples: 1,
} as const;

const KNOWN_KEYS = new Set([...Object.keys(ADAHESSIAN_DEFAULTS), 'seed']);

export function resolveAdaHessianConfig(config: AdaHessianConfig = {}): ResolvedAdaHessianConfig {
  if (config == null || typeof config !== 'object') {
    throw new TypeError('AdaHessian: the config must be an object (or omitted for the defaults).');
  }
  for (const key of Object.keys(config)) {
    if (!KNOWN_KEYS.has(key)) {
      throw new RangeError(
        `AdaHessian: unknown option '${key}'; known options are ${[...KNOWN_KEYS].join(', ')}.`,
      );
    }
  }
  const defined = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined));
  const c = {
    ...ADAHESSIAN_DEFAULTS,
    seed: Math.floor(Math.random() * 2 ** 32),
    ...defined,
  } as ResolvedAdaHessianConfig;
  validateLearningRate(c.learningRate, 'AdaHessian');
  inRange('beta1', c.beta1, 0, 1, '[0, 1)', false);
  inRange('beta2', c.beta2, 0, 1, '[0, 1)', false);
  inRange('epsilon', c.epsilon, 0, Infinity, '[0, Inf)', false);
  inRange('weightDecay', c.weightDecay, 0, Infinity, '[0, Inf)', false);
  if (!(typeof c.hessianPower === 'number' && c.hessianPower > 0 && c.hessianPower <= 1)) {
    throw new RangeError(
      `AdaHessian: hessianPower must be in (0, 1], got ${String(c.hessianPower)}.`,
    );
  }
  positiveInteger('hessianEvery', c.hessianEvery, 1);
  positiveInteger('hessianWarmupSteps', c.hessianWarmupSteps, 0);
  positiveInteger('samples', c.samples, 1);
  if (!Number.isInteger(c.seed) || c.seed < 0 || c.seed > 0xffffffff) {
    throw new RangeError(
      `AdaHessian: seed must be an integer in [0, 2^32 - 1], got ${String(c.seed)}.`,
    );
  }
  validateSpatialAveraging(c.spatialAveraging);
  return c;
}

function inRange(
  name: string,
  x: unknown,
  lo: number,
  hi: number,
  text: string,
  hiInclusive: boolean,
): void {
  const ok =
    typeof x === 'number' && Number.isFinite(x) && x >= lo && (hiInclusive ? x <= hi : x < hi);
  if (!ok) throw new RangeError(`AdaHessian: ${name} must be in ${text}, got ${String(x)}.`);
}

function positiveInteger(name: string, x: unknown, min: number): void {
  if (typeof x !== 'number' || !Number.isInteger(x) || x < min) {
    throw new RangeError(`AdaHessian: ${name} must be an integer >= ${min}, got ${String(x)}.`);
  }
}
