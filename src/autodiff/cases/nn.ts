/**
 * Coverage cases for dense, shape, activation, normalization, embedding, recurrent and
 * attention ops, the losses of src/losses.ts, and tf.layers models. Each builds a small
 * seeded problem whose loss has a non-trivial head (sin, a square, a cross-entropy), so
 * the Hessian is not zero even where the op itself is piecewise linear.
 */
import * as tf from '@tensorflow/tfjs';
import {
  huberLoss,
  meanSquaredError,
  sigmoidCrossEntropy,
  softmaxCrossEntropy,
} from '../../losses.js';
import { batchNormTraining } from '../gradients/batch-norm.js';
import { geluErf as geluErfCompact } from '../gradients/gelu.js';
import { layerNormLastAxis } from '../gradients/layer-norm.js';
import { problem, seeded } from './basic.js';
import type { SecondOrderCase, SecondOrderProblem } from './types.js';

/** A variable with a seeded normal initial value (the initial tensor is freed). */
function seededVariable(shape: number[], seed: number, scale = 1): tf.Variable {
  return variableFrom(seeded(shape, seed, scale));
}

/** A variable holding `init`, which it frees. */
function variableFrom(init: tf.Tensor): tf.Variable {
  const v = tf.variable(init);
  init.dispose();
  return v;
}

/** Sum of sin over all entries: a head with a dense, non-zero Hessian. */
function sinHead(t: tf.Tensor): tf.Scalar {
  return tf.sum(tf.sin(t)) as tf.Scalar;
}

/** One-hot rows for `classes` classes, from a fixed list of labels. */
function oneHotRows(labels: number[], classes: number): tf.Tensor {
  return tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), classes), 'float32'));
}

/** An activation applied after x W + b, with W and b the variables. */
function activationCase(
  name: string,
  act: (h: tf.Tensor) => tf.Tensor,
  options: { xScale?: number; wScale?: number; seed?: number } = {},
): SecondOrderCase {
  const { xScale = 1, wScale = 0.7, seed = 100 } = options;
  return {
    name,
    group: 'activations',
    build() {
      const x = seeded([5, 4], seed, xScale);
      const w = seededVariable([4, 3], seed + 1, wScale);
      const b = seededVariable([3], seed + 2, 0.2);
      return problem([w, b], [x], () => sinHead(act(tf.add(tf.matMul(x, w), b))));
    },
  };
}

/** Wasm lacks UnsortedSegmentSum (gather's gradient) until src/kernels registers one. */
function backendsLackingSegmentSum(): string[] {
  return tf.getKernel('UnsortedSegmentSum', 'wasm') == null ? ['wasm'] : [];
}

/** 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the tanh approximation of GELU. */
function geluTanh(x: tf.Tensor): tf.Tensor {
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
  return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
}

/** x Phi(x) with Phi(x) = (1 + erf(x / sqrt 2)) / 2, the exact GELU. */
function geluErf(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.mul(0.5, tf.add(1, tf.erf(tf.div(x, Math.SQRT2)))));
}

/** (h - mean) / sqrt(var + eps) over the last axis, then gamma and beta. */
function layerNorm(h: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor {
  const { mean, variance } = tf.moments(h, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(h, mean), tf.rsqrt(tf.add(variance, 1e-3))), gamma), beta);
}

// ---------------------------------------------------------------------------------------
// tf.layers models

/**
 * Gives every weight of `model` a seeded value, so the problem is the same on every
 * backend and run (tf.layers' initializers are unseeded). Scales and moving variances
 * start near 1.
 */
function seedWeights(model: tf.LayersModel, seed: number, scale: number): void {
  model.weights.forEach((w, i) => {
    const nearOne = /gamma|moving_variance/.test(w.name);
    const value = tf.tidy(() => {
      const noise = seeded(w.shape as number[], seed + i, nearOne ? 0.2 : scale);
      return nearOne ? tf.add(1, noise) : noise;
    });
    w.write(value);
    value.dispose();
  });
}

/** The tf.Variable behind each trainable weight (LayerVariable.read() returns it). */
export function trainableVariables(model: tf.LayersModel): tf.Variable[] {
  return model.trainableWeights.map((w) => {
    const v = w.read();
    if (!(v instanceof tf.Variable)) throw new Error(`Weight ${w.name} is not a tf.Variable.`);
    return v;
  });
}

/**
 * A loss through `model.apply(x, {training: true})`, the way a training step sees it.
 * `head` turns the model output into the scalar loss.
 */
function layersProblem(
  model: tf.LayersModel,
  x: tf.Tensor,
  head: (y: tf.Tensor) => tf.Scalar,
  consts: tf.Tensor[] = [],
  options: { seed?: number; scale?: number } = {},
): SecondOrderProblem {
  seedWeights(model, options.seed ?? 500, options.scale ?? 0.5);
  return {
    vars: trainableVariables(model),
    lossFn: () => head(model.apply(x, { training: true }) as tf.Tensor),
    dispose: () => {
      model.dispose();
      tf.dispose([x, ...consts]);
    },
  };
}

/** A dense layer with `activation`, then a linear dense layer, with an MSE head. */
function denseLayersCase(activation: 'linear' | 'relu' | 'tanh' | 'sigmoid' | 'softmax') {
  return {
    name: `tf.layers dense (${activation}) + dense, MSE`,
    group: 'layers',
    build() {
      const model = tf.sequential({
        layers: [
          tf.layers.dense({ inputShape: [4], units: 5, activation }),
          tf.layers.dense({ units: 3 }),
        ],
      });
      const x = seeded([6, 4], 510, 1.5);
      const target = seeded([6, 3], 511);
      return layersProblem(model, x, (y) => meanSquaredError(target, y), [target]);
    },
  } satisfies SecondOrderCase;
}

/** `layer` (shape-preserving) between two dense layers, with a sin head. */
function sandwichedLayerCase(name: string, makeLayer: () => tf.layers.Layer): SecondOrderCase {
  return {
    name,
    group: 'layers',
    build() {
      const model = tf.sequential({
        layers: [
          tf.layers.dense({ inputShape: [4], units: 5 }),
          makeLayer(),
          tf.layers.dense({ units: 3 }),
        ],
      });
      const x = seeded([6, 4], 520, 1.5);
      return layersProblem(model, x, sinHead);
    },
  };
}

/** A recurrent layer over 4 time steps, then a dense layer, with an MSE head. */
function recurrentLayerCase(name: string, makeLayer: () => tf.layers.Layer): SecondOrderCase {
  return {
    name,
    group: 'layers',
    build() {
      const model = tf.sequential({
        layers: [makeLayer(), tf.layers.dense({ units: 2 })],
      });
      const x = seeded([2, 4, 3], 530);
      const target = seeded([2, 2], 531);
      return layersProblem(model, x, (y) => meanSquaredError(target, y), [target], {
        seed: 540,
        scale: 0.4,
      });
    },
  };
}

/**
 * tf.fused.matMul with every transpose flag and a batched (rank 3) product, both operands
 * variables. (Stock wasm's _FusedMatMul adds the bias wrongly whenever a transpose flag is
 * set or the batch is > 1; src/kernels/fused-mat-mul.ts fixes it, so wasm is claimed too.)
 */
function fusedTransposesCase(withBias: boolean): SecondOrderCase {
  return {
    name: `tf.fused.matMul, every transpose flag and rank 3, ${withBias ? 'bias' : 'no bias'}`,
    group: 'ops',
    build() {
      const a = seededVariable([4, 3], 40, 0.7);
      const b = seededVariable([3, 4], 41, 0.7);
      const c = seededVariable([2, 5, 3], 42, 0.7);
      const d = seededVariable([2, 3, 4], 43, 0.7);
      const bias = withBias ? seededVariable([4], 44, 0.2) : undefined;
      const vars = bias == null ? [a, b, c, d] : [a, b, c, d, bias];
      return problem(vars, [], () => {
        const mm = (x: tf.Tensor, y: tf.Tensor, transposeA: boolean, transposeB: boolean) =>
          sinHead(tf.fused.matMul({ a: x, b: y, transposeA, transposeB, bias }));
        return tf.addN([
          mm(b, b, true, false),
          mm(a, a, false, true),
          mm(b, a, true, true),
          mm(c, d, false, false),
        ]) as tf.Scalar;
      });
    },
  };
}

export const nnCases: SecondOrderCase[] = [
  // --- dense and shape ops ----------------------------------------------------------------
  {
    name: 'matMul transposeA (both operands variables)',
    group: 'ops',
    build() {
      const a = seededVariable([5, 4], 10, 0.7);
      const b = seededVariable([5, 3], 11, 0.7);
      return problem([a, b], [], () => sinHead(tf.matMul(a, b, true, false)));
    },
  },
  {
    name: 'matMul transposeB (both operands variables)',
    group: 'ops',
    build() {
      const a = seededVariable([4, 5], 12, 0.7);
      const b = seededVariable([3, 5], 13, 0.7);
      return problem([a, b], [], () => sinHead(tf.matMul(a, b, false, true)));
    },
  },
  {
    name: 'matMul transposeA + transposeB',
    group: 'ops',
    build() {
      const a = seededVariable([5, 4], 14, 0.7);
      const b = seededVariable([3, 5], 15, 0.7);
      return problem([a, b], [], () => sinHead(tf.matMul(a, b, true, true)));
    },
  },
  {
    name: 'batched matMul, rank 3 (QK^T style)',
    group: 'ops',
    build() {
      const q = seededVariable([2, 3, 4], 16, 0.7);
      const k = seededVariable([2, 5, 4], 17, 0.7);
      return problem([q, k], [], () => sinHead(tf.matMul(q, k, false, true)));
    },
  },
  {
    name: 'tf.fused.matMul bias + relu',
    group: 'ops',
    build() {
      const x = seeded([5, 4], 18, 1.5);
      const w = seededVariable([4, 3], 19, 0.7);
      const b = seededVariable([3], 20, 0.2);
      return problem([w, b], [x], () =>
        sinHead(tf.fused.matMul({ a: x, b: w, bias: b, activation: 'relu' })),
      );
    },
  },
  {
    name: 'tf.fused.matMul bias, two chained layers (customGrad cross terms)',
    group: 'ops',
    build() {
      const x = seeded([5, 4], 21, 1.5);
      const w1 = seededVariable([4, 3], 22, 0.7);
      const b1 = seededVariable([3], 23, 0.2);
      const w2 = seededVariable([3, 2], 24, 0.7);
      return problem([w1, b1, w2], [x], () => {
        const h = tf.fused.matMul({ a: x, b: w1, bias: b1 });
        return sinHead(tf.fused.matMul({ a: h, b: w2, transposeB: false }));
      });
    },
  },
  fusedTransposesCase(false),
  fusedTransposesCase(true),
  {
    name: 'comparison and logical ops inside tf.where',
    group: 'ops',
    build() {
      const x = seeded([5, 4], 44, 1.5);
      const w = seededVariable([4, 6], 45, 0.8);
      return problem([w], [x], () => {
        const h = tf.matMul(x, w);
        const band = tf.logicalAnd(tf.greater(h, -0.5), tf.lessEqual(h, 1));
        const tails = tf.logicalOr(tf.less(h, -1), tf.greaterEqual(h, 1.5));
        const odd = tf.logicalAnd(tf.notEqual(h, 2), tf.logicalNot(tf.equal(h, 0)));
        const picked = tf.where(band, h, tf.mul(2, h));
        const other = tf.where(tf.logicalOr(tails, odd), tf.square(h), tf.mul(0.5, h));
        return tf.add(sinHead(picked), sinHead(other)) as tf.Scalar;
      });
    },
  },
  {
    name: 'reshape, transpose, concat, slice, pad',
    group: 'ops',
    build() {
      const w = seededVariable([2, 3, 4], 25, 0.8);
      return problem([w], [], () => {
        const t = tf.transpose(tf.reshape(w, [6, 4]), [1, 0]);
        const c = tf.concat([t, tf.square(t)], 1);
        const s = tf.slice(c, [1, 2], [3, 8]);
        return sinHead(
          tf.mul(
            tf.pad(
              s,
              [
                [1, 0],
                [0, 2],
              ],
              0.5,
            ),
            1.3,
          ),
        );
      });
    },
  },
  {
    name: 'max and min reductions',
    group: 'ops',
    build() {
      const x = seeded([4, 5], 26);
      const w = seededVariable([5, 6], 27, 0.7);
      return problem([w], [x], () => {
        const h = tf.matMul(x, w);
        return tf.add(tf.sum(tf.square(tf.max(h, 1))), sinHead(tf.min(h, 0))) as tf.Scalar;
      });
    },
  },
  {
    name: 'element-wise maximum, minimum',
    group: 'ops',
    build() {
      const a = seededVariable([3, 4], 28);
      const b = seededVariable([3, 4], 29);
      return problem(
        [a, b],
        [],
        () =>
          tf.add(
            tf.sum(tf.square(tf.maximum(a, b))),
            sinHead(tf.mul(2, tf.minimum(a, tf.mul(0.5, b)))),
          ) as tf.Scalar,
      );
    },
  },
  {
    name: 'clipByValue',
    group: 'ops',
    build() {
      const x = seeded([5, 4], 30, 1.5);
      const w = seededVariable([4, 3], 31, 0.7);
      return problem([w], [x], () => sinHead(tf.mul(3, tf.clipByValue(tf.matMul(x, w), -1, 1))));
    },
  },
  {
    name: 'pow, variable base (positive) and exponent',
    group: 'ops',
    build() {
      const base = variableFrom(tf.tidy(() => tf.add(1.2, tf.abs(seeded([5], 32, 0.5)))));
      const exponent = seededVariable([5], 33, 0.8);
      return problem([base, exponent], [], () => sinHead(tf.pow(base, exponent)));
    },
  },
  {
    name: 'embedding (tf.gather rows, repeated indices)',
    group: 'ops',
    get skipBackends() {
      return backendsLackingSegmentSum();
    },
    build() {
      const table = seededVariable([10, 4], 34, 0.7);
      const w = seededVariable([4, 3], 35, 0.7);
      const ids = tf.tensor1d([1, 3, 3, 7, 0, 9], 'int32');
      return problem([table, w], [ids], () => sinHead(tf.matMul(tf.gather(table, ids), w)));
    },
  },
  {
    name: 'dropout with a fixed mask',
    group: 'ops',
    build() {
      const x = seeded([5, 4], 36);
      const w = seededVariable([4, 6], 37, 0.7);
      const keep = 0.6;
      const mask = tf.tidy(() =>
        tf.div(tf.floor(tf.add(tf.randomUniform([5, 6], 0, 1, 'float32', 38), keep)), keep),
      );
      return problem([w], [x, mask], () => sinHead(tf.mul(tf.tanh(tf.matMul(x, w)), mask)));
    },
  },

  // --- activations ------------------------------------------------------------------------
  activationCase('relu', tf.relu, { xScale: 1.5 }),
  activationCase('relu6 (inputs on both kinks)', tf.relu6, { xScale: 3, wScale: 1.5, seed: 110 }),
  activationCase('elu', tf.elu, { xScale: 1.5, seed: 120 }),
  activationCase('selu', tf.selu, { xScale: 1.5, seed: 130 }),
  activationCase('leakyRelu (alpha 0.2)', (h) => tf.leakyRelu(h, 0.2), { xScale: 1.5, seed: 140 }),
  {
    name: 'prelu (alpha a variable)',
    group: 'activations',
    build() {
      const x = seeded([5, 4], 150, 1.5);
      const w = seededVariable([4, 3], 151, 0.7);
      const alpha = variableFrom(tf.tidy(() => tf.add(0.25, seeded([3], 152, 0.1))));
      return problem([w, alpha], [x], () => sinHead(tf.prelu(tf.matMul(x, w), alpha)));
    },
  },
  activationCase('tanh', tf.tanh, { seed: 160 }),
  activationCase('sigmoid', tf.sigmoid, { seed: 170 }),
  activationCase('softplus', tf.softplus, { seed: 180 }),
  activationCase('gelu, tanh approximation (tf.pow)', geluTanh, { xScale: 1.5, seed: 190 }),
  activationCase('gelu, erf form', geluErf, { xScale: 1.5, seed: 200 }),
  // The char transformer's GELU (src/autodiff/gradients/gelu.ts): one node's total derivative.
  activationCase('gelu, erf form (compact gradient: geluErf)', geluErfCompact, {
    xScale: 1.5,
    seed: 205,
  }),
  activationCase('softmax', (h) => tf.mul(3, tf.softmax(h)), { seed: 210 }),
  activationCase('logSoftmax', tf.logSoftmax, { seed: 220 }),
  activationCase('logSumExp over the last axis', (h) => tf.logSumExp(h, -1), { seed: 230 }),

  // --- normalization ----------------------------------------------------------------------
  {
    name: 'batch norm, training (tf.moments + tf.batchNorm)',
    group: 'normalization',
    build() {
      const x = seeded([6, 4], 300);
      const w = seededVariable([4, 3], 301, 0.7);
      const gamma = variableFrom(tf.tidy(() => tf.add(1, seeded([3], 302, 0.2))));
      const beta = seededVariable([3], 303, 0.2);
      return problem([w, gamma, beta], [x], () => {
        const h = tf.matMul(x, w);
        const { mean, variance } = tf.moments(h, 0);
        return sinHead(tf.batchNorm(h, mean, variance, beta, gamma, 1e-3));
      });
    },
  },
  {
    // ResNet-20's batch norm (src/autodiff/gradients/batch-norm.ts): its gradient is one node's
    // total derivative through the moments, read back through the node's saved clones.
    name: 'batch norm, training (compact gradient: batchNormTraining, rank 4)',
    group: 'normalization',
    build() {
      const x = seeded([6, 4], 305);
      const w = seededVariable([4, 6], 306, 0.7);
      const gamma = variableFrom(tf.tidy(() => tf.add(1, seeded([3], 307, 0.2))));
      const beta = seededVariable([3], 308, 0.2);
      return problem([w, gamma, beta], [x], () => {
        const h = tf.reshape(tf.matMul(x, w), [3, 2, 2, 3]);
        return sinHead(
          batchNormTraining(h, gamma as tf.Tensor1D, beta as tf.Tensor1D, 1e-3).normed,
        );
      });
    },
  },
  {
    name: 'batch norm, inference (constant statistics)',
    group: 'normalization',
    build() {
      const x = seeded([6, 4], 310);
      const w = seededVariable([4, 3], 311, 0.7);
      const gamma = variableFrom(tf.tidy(() => tf.add(1, seeded([3], 312, 0.2))));
      const beta = seededVariable([3], 313, 0.2);
      const mean = seeded([3], 314, 0.3);
      const variance = tf.tidy(() => tf.add(0.5, tf.abs(seeded([3], 315))));
      return problem([w, gamma, beta], [x, mean, variance], () =>
        sinHead(tf.batchNorm(tf.matMul(x, w), mean, variance, beta, gamma, 1e-3)),
      );
    },
  },
  {
    // The char transformer's layer norm (src/autodiff/gradients/layer-norm.ts): one node's
    // total derivative through the moments, read back through the node's saved clones.
    name: 'layer norm (compact gradient: layerNormLastAxis, rank 3)',
    group: 'normalization',
    build() {
      const x = seeded([5, 4], 325);
      const w = seededVariable([4, 12], 326, 0.7);
      const gamma = variableFrom(tf.tidy(() => tf.add(1, seeded([4], 327, 0.2))));
      const beta = seededVariable([4], 328, 0.2);
      return problem([w, gamma, beta], [x], () => {
        const h = tf.reshape(tf.matMul(x, w), [3, 5, 4]);
        return sinHead(layerNormLastAxis(h, gamma as tf.Tensor1D, beta as tf.Tensor1D, 1e-3));
      });
    },
  },
  {
    name: 'layer normalization (moments over the last axis)',
    group: 'normalization',
    build() {
      const x = seeded([5, 4], 320);
      const w = seededVariable([4, 6], 321, 0.7);
      const gamma = variableFrom(tf.tidy(() => tf.add(1, seeded([6], 322, 0.2))));
      const beta = seededVariable([6], 323, 0.2);
      return problem([w, gamma, beta], [x], () => sinHead(layerNorm(tf.matMul(x, w), gamma, beta)));
    },
  },

  // --- losses -----------------------------------------------------------------------------
  {
    name: 'softmaxCrossEntropy (adahessian losses)',
    group: 'losses',
    build() {
      const x = seeded([6, 4], 400);
      const w = seededVariable([4, 5], 401, 0.8);
      const labels = oneHotRows([0, 4, 2, 2, 1, 3], 5);
      return problem([w], [x, labels], () => softmaxCrossEntropy(labels, tf.matMul(x, w)));
    },
  },
  {
    name: 'sigmoidCrossEntropy (adahessian losses)',
    group: 'losses',
    build() {
      const x = seeded([6, 4], 410);
      const w = seededVariable([4, 3], 411, 0.8);
      const labels = tf.tidy(() => tf.sigmoid(seeded([6, 3], 412, 2))); // soft labels in (0,1)
      return problem([w], [x, labels], () => sigmoidCrossEntropy(labels, tf.matMul(x, w)));
    },
  },
  {
    name: 'meanSquaredError (adahessian losses), sin features',
    group: 'losses',
    build() {
      const x = seeded([6, 4], 420);
      const w = seededVariable([4, 3], 421, 0.8);
      const target = seeded([6, 3], 422);
      return problem([w], [x, target], () => meanSquaredError(target, tf.sin(tf.matMul(x, w))));
    },
  },
  {
    name: 'huberLoss (adahessian losses), errors on both sides of delta',
    group: 'losses',
    build() {
      const x = seeded([6, 4], 430);
      const w = seededVariable([4, 3], 431, 0.8);
      const target = seeded([6, 3], 432, 1.5);
      return problem([w], [x, target], () => huberLoss(target, tf.sin(tf.matMul(x, w)), 0.7));
    },
  },
  {
    name: 'MLP relu/tanh/sigmoid + softmaxCrossEntropy',
    group: 'losses',
    build() {
      const x = seeded([6, 5], 440);
      const labels = oneHotRows([1, 0, 3, 2, 3, 1], 4);
      const dims = [5, 6, 6, 5, 4];
      const ws = dims.slice(1).map((d, i) => seededVariable([dims[i]!, d], 441 + i, 0.8));
      const bs = dims.slice(1).map((d, i) => seededVariable([d], 451 + i, 0.2));
      const acts = [tf.relu, tf.tanh, tf.sigmoid];
      return problem([...ws, ...bs], [x, labels], () => {
        let h: tf.Tensor = x;
        ws.forEach((w, i) => {
          h = tf.add(tf.matMul(h, w), bs[i]!);
          if (i < acts.length) h = acts[i]!(h);
        });
        return softmaxCrossEntropy(labels, h);
      });
    },
  },

  // --- attention and recurrent blocks -----------------------------------------------------
  {
    name: 'multi-head self-attention (2 heads) + residual + softmaxCrossEntropy',
    group: 'attention',
    build() {
      const [batch, seq, dModel, heads] = [2, 3, 4, 2];
      const dHead = dModel / heads;
      const x = seeded([batch, seq, dModel], 600);
      const labels = oneHotRows([0, 3, 1, 2, 2, 0], dModel);
      const [wq, wk, wv, wo] = [601, 602, 603, 604].map((s) =>
        seededVariable([dModel, dModel], s, 0.6),
      ) as [tf.Variable, tf.Variable, tf.Variable, tf.Variable];
      const splitHeads = (t: tf.Tensor) =>
        tf.transpose(tf.reshape(t, [batch, seq, heads, dHead]), [0, 2, 1, 3]);
      return problem([wq, wk, wv, wo], [x, labels], () => {
        const flat = tf.reshape(x, [batch * seq, dModel]);
        const q = splitHeads(tf.matMul(flat, wq));
        const k = splitHeads(tf.matMul(flat, wk));
        const v = splitHeads(tf.matMul(flat, wv));
        const scores = tf.div(tf.matMul(q, k, false, true), Math.sqrt(dHead));
        const context = tf.matMul(tf.softmax(scores), v); // [batch, heads, seq, dHead]
        const merged = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [batch * seq, dModel]);
        const out = tf.add(flat, tf.matMul(merged, wo));
        return softmaxCrossEntropy(labels, out);
      });
    },
  },
  {
    name: 'LSTM cell from ops (4 steps) + MSE',
    group: 'recurrent',
    build() {
      const [batch, features, units, steps] = [2, 3, 4, 4];
      const xs = seeded([steps, batch, features], 700);
      const target = seeded([batch, units], 701);
      const w = seededVariable([features + units, 4 * units], 702, 0.5);
      const b = seededVariable([4 * units], 703, 0.2);
      return problem([w, b], [xs, target], () => {
        let h: tf.Tensor = tf.zeros([batch, units]);
        let c: tf.Tensor = tf.zeros([batch, units]);
        for (const x of tf.unstack(xs)) {
          const z = tf.add(tf.matMul(tf.concat([x, h], 1), w), b);
          const [i, f, g, o] = tf.split(z, 4, 1) as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
          c = tf.add(tf.mul(tf.sigmoid(f), c), tf.mul(tf.sigmoid(i), tf.tanh(g)));
          h = tf.mul(tf.sigmoid(o), tf.tanh(c));
        }
        return meanSquaredError(target, h);
      });
    },
  },

  // --- tf.layers models -------------------------------------------------------------------
  denseLayersCase('linear'),
  denseLayersCase('relu'),
  denseLayersCase('tanh'),
  denseLayersCase('sigmoid'),
  denseLayersCase('softmax'),
  {
    name: 'tf.layers embedding + flatten + dense',
    group: 'layers',
    get skipBackends() {
      return backendsLackingSegmentSum();
    },
    build() {
      const model = tf.sequential({
        layers: [
          tf.layers.embedding({ inputDim: 8, outputDim: 3, inputLength: 4 }),
          tf.layers.flatten(),
          tf.layers.dense({ units: 2 }),
        ],
      });
      const ids = tf.tensor2d(
        [
          [1, 5, 5, 0],
          [7, 2, 1, 3],
        ],
        [2, 4],
        'int32',
      );
      return layersProblem(model, ids, sinHead);
    },
  },
  sandwichedLayerCase('tf.layers batchNormalization (training)', () =>
    tf.layers.batchNormalization(),
  ),
  sandwichedLayerCase('tf.layers layerNormalization', () => tf.layers.layerNormalization()),
  sandwichedLayerCase('tf.layers dropout (rate 0.4, seeded: fixed mask)', () =>
    tf.layers.dropout({ rate: 0.4, seed: 17 }),
  ),
  sandwichedLayerCase('tf.layers prelu', () => tf.layers.prelu()),
  sandwichedLayerCase('tf.layers elu', () => tf.layers.elu()),
  sandwichedLayerCase('tf.layers leakyReLU', () => tf.layers.leakyReLU({ alpha: 0.2 })),
  sandwichedLayerCase('tf.layers activation (selu)', () =>
    tf.layers.activation({ activation: 'selu' }),
  ),
  sandwichedLayerCase('tf.layers activation (gelu)', () =>
    tf.layers.activation({ activation: 'gelu' }),
  ),
  sandwichedLayerCase('tf.layers activation (relu6)', () =>
    tf.layers.activation({ activation: 'relu6' }),
  ),
  recurrentLayerCase('tf.layers lstm (3 units, 4 steps)', () =>
    tf.layers.lstm({ units: 3, inputShape: [4, 3] }),
  ),
  recurrentLayerCase('tf.layers gru (3 units, 4 steps)', () =>
    tf.layers.gru({ units: 3, inputShape: [4, 3] }),
  ),
  recurrentLayerCase('tf.layers simpleRNN (3 units, 4 steps)', () =>
    tf.layers.simpleRNN({ units: 3, inputShape: [4, 3] }),
  ),
];
