/**
 * First-order optimizer updates for the cpu backend as typed-array loops (installed by
 * enableNativeKernels, like adahessian-update.ts for AdaHessian): one pass per variable
 * instead of ~12 tensor ops, each a kernel call, an allocation and a pass over the values.
 * TF.js's Adam cost ~13 ms a small-CNN step over SGD this way; PyTorch's ~2.
 *
 * - tf.train.adam's AdamOptimizer and tf.train.momentum's MomentumOptimizer: their
 *   applyGradients is replaced on the prototype while the native kernels are on (and put back
 *   by disableNativeKernels), so every instance, including the CLI's, gets it. The slots are
 *   the same variables under the same names, created the same way, so getWeights, setWeights
 *   and serialisation are unchanged. Any call it does not handle (another backend, a
 *   non-float32 gradient) goes to TF.js's own method.
 * - Our AdamW consults the hook of src/optimizers/fused-first-order.ts.
 *
 * Each loop rounds to float32 wherever the op it replaces stores a float32 tensor, in the
 * ops' order, with the scalars as the ops see them (float32), so the results are the ops'
 * bit for bit (float32 +, -, *, / and sqrt are correctly rounded, and rounding a double result
 * of float32 operands gives the same). test/native/first-order-update.test.ts pins that.
 *
 * The new w, m and v take the arrays of the last step's disposed ones, and the inputs are read
 * without marking them seen (recycled-arrays.ts, as adahessian-update.ts): a replayed step's
 * gradients and the update's own tensors come back each step, so Adam's replayed step makes no
 * new arrays either (a fair baseline for AdaHessian's). Every element is written, so the bits
 * are those of new arrays.
 */
import * as tf from '@tensorflow/tfjs';
import type {
  FusedAdamWInput,
  FusedAdamWOutput,
  FusedAdamWUpdate,
} from '../optimizers/fused-first-order.js';
import { adamSimd, type AdamScalars } from './adam-simd.js';
import { recycledTensor, takeArray, valuesForUpdate } from './recycled-arrays.js';

const f = Math.fround;

/** Whether tf.train.adam's update runs as WebAssembly SIMD where it can (tests turn it off). */
let useSimd = true;
export function setAdamSimd(on: boolean): void {
  useSimd = on;
}
// Reads that keep nothing past the update (recycled-arrays.ts); new arrays via takeArray.
const values = valuesForUpdate;
const handles = (...ts: tf.Tensor[]) =>
  ts.every((t) => t.dtype === 'float32' && t.size === ts[0]!.size);

/** AdamW (src/optimizers/adamw.ts) in one pass. */
export const cpuAdamWUpdate: FusedAdamWUpdate = {
  update(input: FusedAdamWInput): FusedAdamWOutput | null {
    const { w, g, m, v } = input;
    if (!handles(w, g, m, v)) return null;
    const [wv, gv, mv, vv] = [values(w), values(g), values(m), values(v)];
    const b1 = f(input.beta1);
    const ob1 = f(1 - input.beta1);
    const b2 = f(input.beta2);
    const ob2 = f(1 - input.beta2);
    const bc1 = f(input.biasCorrection1);
    const bc2 = f(input.biasCorrection2);
    const eps = f(input.epsilon);
    const lr = f(input.learningRate);
    const wd = f(input.weightDecay);
    const n = w.size;
    const newW = takeArray(n);
    const newM = takeArray(n);
    const newV = takeArray(n);
    for (let i = 0; i < n; i++) {
      const gi = gv[i]!;
      const wi = wv[i]!;
      const mi = f(f(mv[i]! * b1) + f(gi * ob1));
      const vi = f(f(vv[i]! * b2) + f(f(gi * gi) * ob2));
      const direction = f(f(mi / bc1) / f(f(Math.sqrt(f(vi / bc2))) + eps));
      const update = input.weightDecay === 0 ? direction : f(direction + f(wi * wd));
      newW[i] = wi - f(update * lr);
      newM[i] = mi;
      newV[i] = vi;
    }
    return {
      w: recycledTensor(newW, w.shape),
      m: recycledTensor(newM, w.shape),
      v: recycledTensor(newV, w.shape),
    };
  },
};

type VariableGradients = tf.NamedTensorMap | { name: string; tensor: tf.Tensor }[];
type ApplyGradients = (this: tf.Optimizer, grads: VariableGradients) => void;
interface Slot {
  originalName: string;
  variable: tf.Variable;
}
/** AdamOptimizer's fields that its applyGradients uses (they are private in the typings). */
interface AdamFields {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: Slot[];
  accumulatedSecondMoment: Slot[];
  incrementIterations(): void;
}
interface MomentumFields {
  /** The momentum and -learningRate as float32 scalars. */
  m: tf.Scalar;
  c: tf.Scalar;
  useNesterov: boolean;
  accumulations: Slot[];
  incrementIterations(): void;
}

/** The variables and gradients of an applyGradients call, or null when we do not handle it. */
function resolve(grads: VariableGradients): { value: tf.Variable; gradient?: tf.Tensor }[] | null {
  if (tf.getBackend() !== 'cpu') return null;
  const names = Array.isArray(grads) ? grads.map((x) => x.name) : Object.keys(grads);
  const registered = tf.engine().registeredVariables;
  const out = names.map((name, i) => ({
    value: registered[name]!,
    gradient: Array.isArray(grads) ? grads[i]!.tensor : grads[name],
  }));
  const ok = out.every(
    ({ value, gradient }) =>
      value != null && value.dtype === 'float32' && (gradient == null || handles(value, gradient)),
  );
  return ok ? out : null;
}

/** A zero slot like `value`, as TF.js's optimizers create theirs. */
const newSlot = (value: tf.Variable, suffix: string): Slot => ({
  originalName: `${value.name}/${suffix}`,
  variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
});

/** Gives `variable` new values, through a tensor that is disposed again. */
function assignValues(variable: tf.Variable, data: Float32Array): void {
  const t = recycledTensor(data, variable.shape);
  variable.assign(t);
  t.dispose();
}

function fusedAdam(original: ApplyGradients): ApplyGradients {
  return function (this: tf.Optimizer, grads: VariableGradients): void {
    const vars = resolve(grads);
    if (vars == null) return original.call(this, grads);
    const o = this as unknown as AdamFields;
    const b1 = f(o.beta1);
    const ob1 = f(1 - o.beta1);
    const b2 = f(o.beta2);
    const ob2 = f(1 - o.beta2);
    const oneMinusAcc1 = f(1 - o.accBeta1.dataSync()[0]!);
    const oneMinusAcc2 = f(1 - o.accBeta2.dataSync()[0]!);
    const eps = f(o.epsilon);
    const negLr = f(-o.learningRate);
    // The same loop four lanes at a time, the same bits (adam-simd.ts); null: the JS loop.
    const simd = useSimd ? adamSimd() : null;
    const scalars: AdamScalars = {
      beta1: b1,
      oneMinusBeta1: ob1,
      beta2: b2,
      oneMinusBeta2: ob2,
      biasCorrection1: oneMinusAcc1,
      biasCorrection2: oneMinusAcc2,
      epsilon: eps,
      negativeLearningRate: negLr,
    };
    vars.forEach(({ value, gradient }, i) => {
      o.accumulatedFirstMoment[i] ??= newSlot(value, 'm');
      o.accumulatedSecondMoment[i] ??= newSlot(value, 'v');
      if (gradient == null) return;
      const m = o.accumulatedFirstMoment[i]!.variable;
      const v = o.accumulatedSecondMoment[i]!.variable;
      const [wv, gv, mv, vv] = [values(value), values(gradient), values(m), values(v)];
      const n = value.size;
      // Pooled arrays hold old values: every element is written below (SIMD or loop).
      const newW = takeArray(n);
      const newM = takeArray(n);
      const newV = takeArray(n);
      if (simd != null) {
        simd.update(wv, gv, mv, vv, newW, newM, newV, scalars);
      } else {
        for (let j = 0; j < n; j++) {
          const gj = gv[j]!;
          const mj = f(f(mv[j]! * b1) + f(gj * ob1));
          const vj = f(f(vv[j]! * b2) + f(f(gj * gj) * ob2));
          const denominator = f(f(Math.sqrt(f(vj / oneMinusAcc2))) + eps);
          newW[j] = f(f(f(mj / oneMinusAcc1) / denominator) * negLr) + wv[j]!;
          newM[j] = mj;
          newV[j] = vj;
        }
      }
      assignValues(m, newM);
      assignValues(v, newV);
      assignValues(value, newW);
    });
    tf.tidy(() => {
      o.accBeta1.assign(tf.mul(o.accBeta1, o.beta1));
      o.accBeta2.assign(tf.mul(o.accBeta2, o.beta2));
    });
    o.incrementIterations();
  };
}

function fusedMomentum(original: ApplyGradients): ApplyGradients {
  return function (this: tf.Optimizer, grads: VariableGradients): void {
    const vars = resolve(grads);
    if (vars == null) return original.call(this, grads);
    const o = this as unknown as MomentumFields;
    const mom = o.m.dataSync()[0]!;
    const c = o.c.dataSync()[0]!;
    vars.forEach(({ value, gradient }, i) => {
      o.accumulations[i] ??= newSlot(value, 'momentum');
      if (gradient == null) return;
      const acc = o.accumulations[i]!.variable;
      const [wv, gv, av] = [values(value), values(gradient), values(acc)];
      const n = value.size;
      const newW = takeArray(n);
      const newA = takeArray(n);
      for (let j = 0; j < n; j++) {
        const gj = gv[j]!;
        const aj = f(f(mom * av[j]!) + gj);
        const step = o.useNesterov ? f(c * f(gj + f(aj * mom))) : f(c * aj);
        newW[j] = step + wv[j]!;
        newA[j] = aj;
      }
      assignValues(acc, newA);
      assignValues(value, newW);
    });
    o.incrementIterations();
  };
}

/**
 * Replaces AdamOptimizer's and MomentumOptimizer's applyGradients with the fused versions;
 * returns how to put TF.js's back.
 */
export function installFusedFirstOrderUpdates(): () => void {
  const patched: [{ prototype: tf.Optimizer }, ApplyGradients][] = [];
  for (const [cls, make] of [
    [tf.AdamOptimizer, fusedAdam],
    [tf.MomentumOptimizer, fusedMomentum],
  ] as const) {
    const proto = cls.prototype as unknown as { applyGradients: ApplyGradients };
    const original = proto.applyGradients;
    proto.applyGradients = make(original);
    patched.push([cls as unknown as { prototype: tf.Optimizer }, original]);
  }
  return () => {
    for (const [cls, original] of patched) {
      (cls.prototype as unknown as { applyGradients: ApplyGradients }).applyGradients = original;
    }
  };
}
