/**
 * AdamW (Loshchilov and Hutter 2019): Adam with decoupled weight decay, which TF.js lacks.
 *
 *   m_t = beta1 m + (1 - beta1) g          m_hat = m_t / (1 - beta1^t)
 *   v_t = beta2 v + (1 - beta2) g^2        v_hat = v_t / (1 - beta2^t)
 *   w  <- w - lr (m_hat / (sqrt(v_hat) + eps) + weightDecay w)
 *
 * as PyTorch's torch.optim.AdamW (decay scaled by lr, applied to the weights before the step).
 */
import * as tf from '@tensorflow/tfjs';
import { fusedAdamWUpdateFor } from './fused-first-order.js';
import { biasCorrection, decoupledStep, movingAverage } from './moments.js';
import { SlotSet } from './slots.js';
import { resolveVariables, toNamedMap, type NamedTensor } from './variables.js';

export interface AdamWConfig {
  /** Default 0.001. */
  learningRate?: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8 (PyTorch's). */
  epsilon?: number;
  /** Default 0.01 (PyTorch's). */
  weightDecay?: number;
}

export const ADAMW_DEFAULTS: Required<AdamWConfig> = {
  learningRate: 0.001,
  beta1: 0.9,
  beta2: 0.999,
  epsilon: 1e-8,
  weightDecay: 0.01,
};

export class AdamW extends tf.Optimizer {
  static get className(): string {
    return 'AdamW';
  }

  readonly config: Required<AdamWConfig>;
  private readonly slots = new SlotSet(['m', 'v']);

  constructor(config: AdamWConfig = {}) {
    super();
    const defined = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined));
    this.config = { ...ADAMW_DEFAULTS, ...defined };
    const c = this.config;
    for (const [name, x, ok] of [
      ['learningRate', c.learningRate, c.learningRate >= 0],
      ['beta1', c.beta1, c.beta1 >= 0 && c.beta1 < 1],
      ['beta2', c.beta2, c.beta2 >= 0 && c.beta2 < 1],
      ['epsilon', c.epsilon, c.epsilon >= 0],
      ['weightDecay', c.weightDecay, c.weightDecay >= 0],
    ] as const) {
      if (typeof x !== 'number' || !Number.isFinite(x) || !ok) {
        throw new RangeError(`AdamW: ${name} is out of range: ${String(x)}.`);
      }
    }
  }

  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const names = Array.isArray(variableGradients)
      ? variableGradients.map((x) => x.name)
      : Object.keys(variableGradients);
    const grads = toNamedMap(variableGradients);
    const vars = resolveVariables(names, 'AdamW');
    const c = this.config;
    const t = this.iterations + 1;
    const bc1 = biasCorrection(c.beta1, t);
    const bc2 = biasCorrection(c.beta2, t);
    const fused = fusedAdamWUpdateFor(tf.getBackend());
    tf.tidy(() => {
      vars.forEach((w, i) => {
        const g = grads[names[i]!];
        const m = this.slots.get('m', i, w);
        const v = this.slots.get('v', i, w);
        if (g == null) return;
        const out = fused?.update({
          w,
          g,
          m,
          v,
          beta1: c.beta1,
          beta2: c.beta2,
          biasCorrection1: bc1,
          biasCorrection2: bc2,
          learningRate: c.learningRate,
          epsilon: c.epsilon,
          weightDecay: c.weightDecay,
        });
        if (out != null) {
          w.assign(out.w);
          m.assign(out.m);
          v.assign(out.v);
          return;
        }
        const newM = movingAverage(m, g, c.beta1);
        const newV = movingAverage(v, tf.square(g), c.beta2);
        const direction = tf.div(tf.div(newM, bc1), tf.add(tf.sqrt(tf.div(newV, bc2)), c.epsilon));
        w.assign(decoupledStep(w, direction, c.learningRate, c.weightDecay));
        m.assign(newM);
        v.assign(newV);
      });
    });
    this.incrementIterations();
  }

  override dispose(): void {
    super.dispose();
    this.slots.dispose();
  }

  override async getWeights(): Promise<NamedTensor[]> {
    return [await this.saveIterations(), ...this.slots.named()];
  }

  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    this.slots.restore(await this.extractIterations(weightValues));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...this.config };
  }

  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    // tf.loadLayersModel adds its customObjects to the config it passes here.
    const { customObjects: _customObjects, ...settings } = config;
    return new (cls as unknown as new (c: AdamWConfig) => T)(settings as AdamWConfig);
  }
}

tf.serialization.registerClass(AdamW);

export function adamw(config: AdamWConfig = {}): AdamW {
  return new AdamW(config);
}
