/**
 * AdaHessian (Yao et al. 2020, arXiv 2006.00719, Algorithm 1) as a TensorFlow.js optimizer:
 *
 *   D_t     = spatial_average(|diag estimate|)        diag estimate = mean_j z_j * (H z_j)
 *   m_t     = beta1 m_{t-1} + (1 - beta1) g_t          m_hat = m_t / (1 - beta1^t)
 *   v_n     = beta2 v_{n-1} + (1 - beta2) D_t^2        v_hat = sqrt(v_n / (1 - beta2^n))
 *   w_{t+1} = w_t - lr_t (m_hat / (v_hat^k + eps) + weightDecay w_t)
 *
 * Delayed Hessian (hessianEvery = f): D is computed on step 1 and then every f-th step
 * (every step during the first hessianWarmupSteps). v and its count n move only on those
 * steps; in between, the last v_hat is reused as it is (no stale D is fed into the average
 * again, and the first step always has a D, so the update is never m_hat / eps).
 * m and its bias correction count every step t. See docs/OPTIMIZER.md.
 */
import * as tf from '@tensorflow/tfjs';
import { UnsupportedSecondOrderError } from '../autodiff/verified-kernels.js';
import {
  resolveAdaHessianConfig,
  type AdaHessianConfig,
  type ResolvedAdaHessianConfig,
} from './adahessian-config.js';
import { probeConnectivity } from './connected-variables.js';
import { drawProbes, hutchinsonDiagonal } from './hutchinson.js';
import {
  stepGraphProvider,
  type StepGraphEstimate,
  type StepGraphProvider,
} from '../native/step-graph/hook.js';
import { learningRateAt, serialisableLearningRate } from './learning-rate.js';
import { fusedAdaHessianUpdateFor } from './fused-update.js';
import { biasCorrection, decoupledStep, movingAverage } from './moments.js';
import { allFinite, assertAllFinite, type NamedCheck } from './non-finite.js';
import { RademacherGenerator, type RademacherState } from './rademacher.js';
import { SlotSet } from './slots.js';
import { averagingModeFor, spatialAverage } from './spatial-average.js';
import { resolveVariables, toNamedMap, trainableVariables, type NamedTensor } from './variables.js';

const STATE_HESSIAN_UPDATES = 'hessianUpdates';
const STATE_PROBE_GENERATOR = 'probeGenerator';

export class AdaHessian extends tf.Optimizer {
  static get className(): string {
    return 'AdaHessian';
  }

  readonly config: ResolvedAdaHessianConfig;
  private readonly generator: RademacherGenerator;
  private hessianUpdates = 0;
  private readonly slots = new SlotSet(['m', 'v']);

  constructor(config: AdaHessianConfig = {}) {
    super();
    this.config = resolveAdaHessianConfig(config);
    this.generator = new RademacherGenerator(this.config.seed);
  }

  /** How many Hessian diagonals have entered the moving average v (its bias-correction count). */
  get hessianUpdateCount(): number {
    return this.hessianUpdates;
  }

  /** Whether minimize() computes a Hessian diagonal at `step` (1-based; default the next). */
  isHessianDue(step: number = this.iterations + 1): boolean {
    const { hessianEvery: f, hessianWarmupSteps: warmup } = this.config;
    return step <= warmup || (step - warmup - 1) % f === 0;
  }

  /**
   * One AdaHessian step on f(): gradient and, when due, the Hutchinson estimate of the Hessian
   * diagonal from one forward pass. This is what model.fit calls once per batch.
   */
  override minimize(
    f: () => tf.Scalar,
    returnCost = false,
    varList?: tf.Variable[],
  ): tf.Scalar | null {
    const vars = trainableVariables(varList);
    const generatorBefore = this.generator.state;
    let loss: tf.Scalar | null = null;
    let grads: (tf.Tensor | null)[] = [];
    let diagonal: (tf.Tensor | null)[] | null = null;
    try {
      // --- Step graphs (src/native/step-graph): with a provider installed, the same loss,
      // gradients and diagonal from one replayed ONNX graph; null means op by op, below. ---
      const graphs = stepGraphProvider();
      const viaGraph = !graphs
        ? null
        : this.isHessianDue()
          ? this.hutchinsonViaGraph(graphs, f, vars)
          : graphs.gradient(this, f, vars);
      if (viaGraph != null) {
        ({ loss, grads, diagonal } = viaGraph);
        if (!grads.some((g) => g != null)) throw noConnectionError();
      } else if (this.isHessianDue()) {
        // --- end of the step-graph hook ---
        const probe = probeConnectivity(f, vars);
        const est = hutchinsonDiagonal(probe.lossFn, vars, {
          samples: this.config.samples,
          generator: this.generator,
          checkFinite: false,
        });
        const connected = probe.connected() ?? vars.map(() => true);
        loss = est.loss;
        grads = est.grads.map((g, i) => (connected[i] ? g : (g.dispose(), null)));
        diagonal = est.diagonal.map((d, i) => (connected[i] ? d : (d.dispose(), null)));
        if (!connected.some(Boolean)) throw noConnectionError();
      } else {
        const { value, grads: named } = tf.variableGrads(f, vars);
        loss = value;
        grads = vars.map((v) => named[v.name] ?? null);
      }
      this.step(vars, grads, diagonal, loss);
    } catch (e) {
      this.generator.state = generatorBefore;
      loss?.dispose();
      throw explain(e);
    } finally {
      tf.dispose(grads.filter((g): g is tf.Tensor => g != null));
      if (diagonal) tf.dispose(diagonal.filter((d): d is tf.Tensor => d != null));
    }
    if (returnCost) return loss;
    loss.dispose();
    return null;
  }

  /** The step-graph provider's estimate with probes drawn as hutchinsonDiagonal would draw them. */
  private hutchinsonViaGraph(
    graphs: StepGraphProvider,
    f: () => tf.Scalar,
    vars: tf.Variable[],
  ): StepGraphEstimate | null {
    const before = this.generator.state;
    const make = graphs.probeTensor?.bind(graphs);
    const probes = drawProbes(this.generator, vars, this.config.samples, make);
    try {
      const estimate = graphs.hutchinson(this, f, vars, probes);
      // Op by op after all: it draws the same probes again.
      if (estimate == null) this.generator.state = before;
      return estimate;
    } finally {
      tf.dispose(probes.flat());
    }
  }

  /**
   * The lower-level step: gradients and a Hessian diagonal the caller computed (e.g. exactly,
   * or with hutchinsonDiagonal). `hessianDiagonal` is the signed diagonal estimate; this step
   * takes its absolute value and applies spatial averaging. Pass null on a step without a new
   * diagonal (delayed Hessian): the last v_hat is reused. Entries are matched by variable name;
   * a null gradient skips that variable.
   */
  applyGradientsWithHessian(
    variableGradients: tf.NamedTensorMap | NamedTensor[],
    hessianDiagonal: tf.NamedTensorMap | NamedTensor[] | null,
  ): void {
    const names = Array.isArray(variableGradients)
      ? variableGradients.map((x) => x.name)
      : Object.keys(variableGradients);
    const gradMap = toNamedMap(variableGradients);
    const vars = resolveVariables(names, 'AdaHessian');
    const grads = names.map((n) => gradMap[n] ?? null);
    let diagonal: (tf.Tensor | null)[] | null = null;
    if (hessianDiagonal != null) {
      const diagMap = toNamedMap(hessianDiagonal);
      diagonal = names.map((n, i) => {
        const d = diagMap[n];
        if (d == null && grads[i] != null) {
          throw new Error(
            `AdaHessian: a Hessian diagonal was given, but none for variable '${n}'.`,
          );
        }
        return d ?? null;
      });
    }
    this.step(vars, grads, diagonal, null);
  }

  /**
   * TF.js's first-order entry point: a step without a new Hessian diagonal, reusing the last
   * v_hat. Refused before the first diagonal (that would divide by epsilon alone).
   */
  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    this.applyGradientsWithHessian(variableGradients, null);
  }

  private step(
    vars: tf.Variable[],
    grads: (tf.Tensor | null)[],
    diagonal: (tf.Tensor | null)[] | null,
    loss: tf.Scalar | null,
  ): void {
    const c = this.config;
    const t = this.iterations + 1;
    const hasHessian = diagonal != null;
    if (!hasHessian && this.hessianUpdates === 0) {
      throw new Error(
        'AdaHessian: no Hessian diagonal has been seen yet, so there is no denominator. The first ' +
          'step needs one: call minimize(), or applyGradientsWithHessian(grads, diagonal).',
      );
    }
    const checks: NamedCheck[] = [];
    if (loss) checks.push({ what: 'the loss', tensor: loss });
    vars.forEach((v, i) => {
      const g = grads[i];
      if (g == null) return;
      if (!tf.util.arraysEqual(g.shape, v.shape)) {
        throw new Error(
          `AdaHessian: the gradient of '${v.name}' has shape [${g.shape}], the variable [${v.shape}].`,
        );
      }
      checks.push({ what: `the gradient of '${v.name}'`, tensor: g });
      const d = diagonal?.[i];
      if (d != null) {
        if (!tf.util.arraysEqual(d.shape, v.shape)) {
          throw new Error(
            `AdaHessian: the Hessian diagonal of '${v.name}' has shape [${d.shape}], the variable [${v.shape}].`,
          );
        }
        checks.push({ what: `the Hessian diagonal estimate of '${v.name}'`, tensor: d });
      }
    });
    const lr = learningRateAt(c.learningRate, t, 'AdaHessian');
    const n = this.hessianUpdates + (hasHessian ? 1 : 0);
    const bc1 = biasCorrection(c.beta1, t);
    const bc2 = biasCorrection(c.beta2, n);
    // The new w, m and v of every variable are computed first and assigned only once they
    // are all known to be finite (with the inputs, in one reduction): a step that would make
    // weights or state NaN or infinite (a huge learning rate, epsilon 0 over a zero diagonal)
    // is refused and leaves everything as it was.
    const fused = fusedAdaHessianUpdateFor(tf.getBackend());
    const updates: { w: tf.Variable; i: number; next: tf.Tensor[] }[] = [];
    const zeros: tf.Tensor[] = [];
    try {
      vars.forEach((w, i) => {
        const g = grads[i];
        if (g == null) return;
        // State is created only when the step is accepted; until then a new one reads as zeros.
        const existingM = this.slots.find('m', i, w);
        const existingV = this.slots.find('v', i, w);
        if (existingM == null || existingV == null) zeros.push(tf.zerosLike(w));
        const m = existingM ?? zeros.at(-1)!;
        const v = existingV ?? zeros.at(-1)!;
        const out =
          fused?.update({
            w,
            g,
            m,
            v,
            diagonal: hasHessian ? diagonal[i]! : null,
            averaging: averagingModeFor(w.rank, c.spatialAveraging),
            beta1: c.beta1,
            beta2: c.beta2,
            biasCorrection1: bc1,
            biasCorrection2: bc2,
            learningRate: lr,
            epsilon: c.epsilon,
            weightDecay: c.weightDecay,
            hessianPower: c.hessianPower,
          }) ?? null;
        if (out != null) {
          updates.push({ w, i, next: [out.w, out.m, ...(out.v != null ? [out.v] : [])] });
          return;
        }
        const next = tf.tidy(() => {
          const newM = movingAverage(m, g, c.beta1);
          let newV: tf.Tensor = v;
          if (hasHessian) {
            const d = spatialAverage(
              tf.abs(diagonal[i]!),
              averagingModeFor(w.rank, c.spatialAveraging),
            );
            newV = movingAverage(v, tf.square(d), c.beta2);
          }
          const vHatPowK =
            c.hessianPower === 1
              ? tf.sqrt(tf.div(newV, bc2))
              : tf.pow(tf.div(newV, bc2), c.hessianPower / 2);
          const direction = tf.div(tf.div(newM, bc1), tf.add(vHatPowK, c.epsilon));
          const newW = decoupledStep(w, direction, lr, c.weightDecay);
          return hasHessian ? [newW, newM, newV] : [newW, newM];
        });
        updates.push({ w, i, next });
      });
      const produced: NamedCheck[] = updates.flatMap(({ w, next }) =>
        next.map((tensor, k) => ({ what: `${NEW_VALUE_OF[k]} of '${w.name}'`, tensor })),
      );
      const everything = [...checks, ...produced].map((x) => x.tensor);
      const finite = fused != null ? fused.allFinite(everything) : allFinite(everything);
      if (!finite) {
        // Name the culprit: a non-finite input first, else the update that overflowed.
        assertAllFinite(checks, `AdaHessian step ${t}`);
        assertAllFinite(produced, `AdaHessian step ${t}`);
      }
      for (const { w, i, next } of updates) {
        w.assign(next[0]!);
        this.slots.get('m', i, w).assign(next[1]!);
        if (next[2] != null) this.slots.get('v', i, w).assign(next[2]);
      }
    } finally {
      for (const u of updates) tf.dispose(u.next);
      tf.dispose(zeros);
    }
    this.hessianUpdates = n;
    this.incrementIterations();
  }

  override dispose(): void {
    super.dispose();
    this.slots.dispose();
  }

  /** [iter, hessianUpdates, probeGenerator (4 x int32), every m, every v]. */
  override async getWeights(): Promise<NamedTensor[]> {
    const words = this.generator.state.map((w) => w | 0);
    return [
      await this.saveIterations(),
      { name: STATE_HESSIAN_UPDATES, tensor: tf.scalar(this.hessianUpdates, 'int32') },
      { name: STATE_PROBE_GENERATOR, tensor: tf.tensor1d(words, 'int32') },
      ...this.slots.named(),
    ];
  }

  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    const rest = await this.extractIterations(weightValues);
    const [updates, generator, ...slots] = rest;
    if (updates?.name !== STATE_HESSIAN_UPDATES || generator?.name !== STATE_PROBE_GENERATOR) {
      throw new Error(
        `AdaHessian.setWeights: expected '${STATE_HESSIAN_UPDATES}' and '${STATE_PROBE_GENERATOR}' after 'iter', ` +
          `got '${updates?.name}' and '${generator?.name}'. Was this state saved by AdaHessian.getWeights()?`,
      );
    }
    this.hessianUpdates = (await updates.tensor.data())[0]!;
    this.generator.state = Array.from(
      await generator.tensor.data(),
      (w) => w >>> 0,
    ) as RademacherState;
    this.slots.restore(slots);
  }

  override getConfig(): tf.serialization.ConfigDict {
    const c = this.config;
    return {
      learningRate: serialisableLearningRate(c.learningRate, 'AdaHessian'),
      beta1: c.beta1,
      beta2: c.beta2,
      epsilon: c.epsilon,
      weightDecay: c.weightDecay,
      hessianPower: c.hessianPower,
      spatialAveraging: JSON.parse(JSON.stringify(c.spatialAveraging)),
      hessianEvery: c.hessianEvery,
      hessianWarmupSteps: c.hessianWarmupSteps,
      samples: c.samples,
      seed: c.seed,
    };
  }

  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    // tf.loadLayersModel adds its customObjects to the config it passes here.
    const { customObjects: _customObjects, ...settings } = config;
    return new (cls as unknown as new (c: AdaHessianConfig) => T)(settings as AdaHessianConfig);
  }
}

tf.serialization.registerClass(AdaHessian);

/** What the k-th tensor of an update is, for the message that refuses it. */
const NEW_VALUE_OF = ['the updated weights', 'the new first moment', 'the new second moment'];

/** `adahessian(config)`, in the style of tf.train.adam(...). */
export function adahessian(config: AdaHessianConfig = {}): AdaHessian {
  return new AdaHessian(config);
}

function noConnectionError(): Error {
  return new Error(
    'AdaHessian: the loss does not depend on any of the variables being trained. Make sure ' +
      'the operations that use the variables are inside the function passed to minimize().',
  );
}

/** Adds what an AdaHessian user can do about an unverified kernel on the second-order path. */
function explain(e: unknown): unknown {
  if (e instanceof UnsupportedSecondOrderError && !e.message.includes('AdaHessian')) {
    e.message +=
      ' AdaHessian differentiates your loss twice, so every op between the weights and the loss ' +
      'must be second-order safe: replace that op, or give the model a logits output and use ' +
      "this package's softmaxCrossEntropy.";
  }
  return e;
}
