/**
 * AdaHessian's two steps as step graphs: the gradient with the Hutchinson diagonal, and the
 * plain gradient (delayed-Hessian steps). Each returns what the op-by-op code returns, in
 * the same order, so the optimizer cannot tell the two apart but for float32 rounding.
 */
import * as tf from '@tensorflow/tfjs';
import { hutchinsonDiagonal } from '../../optimizers/hutchinson.js';
import { probeConnectivity } from '../../optimizers/connected-variables.js';
import { StepGraphCompiler, type StepGraphOptions } from './step-graph.js';
import { adaHessianSimd } from '../adahessian-simd.js';

export interface HutchinsonStep {
  loss: tf.Scalar;
  grads: tf.Tensor[];
  diagonal: tf.Tensor[];
  /** Which variables the loss depends on (null: unknown, treat all as connected). */
  connected: boolean[] | null;
  replayed: boolean;
}

export interface GradientStep {
  loss: tf.Scalar;
  /** One per variable; null where the loss does not depend on it. */
  grads: (tf.Tensor | null)[];
  replayed: boolean;
}

/** Compiled steps for one optimizer and one variable list. */
export class CompiledSteps {
  readonly hutchinson: StepGraphCompiler<boolean[] | null>;
  readonly gradient: StepGraphCompiler<boolean[]>;

  constructor(
    readonly vars: readonly tf.Variable[],
    options: StepGraphOptions = {},
  ) {
    // Its gradients and diagonal in the SIMD update's memory, read there in place.
    this.hutchinson = new StepGraphCompiler({
      residentOutputs: adaHessianSimd()?.resident ?? null,
      ...options,
    });
    // First-order only: the AdaHessian graph's rounding stays (lr-text's results are pinned).
    // ADAHESSIAN_LN_GRAD=0, ADAHESSIAN_GELU_GRAD=0 and ADAHESSIAN_MATMUL_RESHAPES=1 leave them
    // out (benchmarks' A/Bs).
    const layerNormGradients = process.env['ADAHESSIAN_LN_GRAD'] !== '0';
    const geluGradients = process.env['ADAHESSIAN_GELU_GRAD'] !== '0';
    const elideMatMulReshapes = process.env['ADAHESSIAN_MATMUL_RESHAPES'] !== '1';
    this.gradient = new StepGraphCompiler({
      ...options,
      layerNormGradients,
      geluGradients,
      elideMatMulReshapes,
    });
  }

  /** Loss, gradients and (1/s) sum_j z_j * (H z_j) for the given probes (s lists of one per variable). */
  hutchinsonStep(f: () => tf.Scalar, probes: tf.Tensor[][]): HutchinsonStep {
    const vars = [...this.vars];
    const n = vars.length;
    const { outputs, extra, replayed } = this.hutchinson.run(
      f,
      probes.flat(),
      (forward) => {
        const probe = probeConnectivity(forward, vars);
        const est = hutchinsonDiagonal(probe.lossFn, vars, { probes, checkFinite: false });
        return { outputs: [est.loss, ...est.grads, ...est.diagonal], extra: probe.connected() };
      },
      vars,
    );
    return {
      loss: outputs[0] as tf.Scalar,
      grads: outputs.slice(1, 1 + n),
      diagonal: outputs.slice(1 + n),
      connected: extra,
      replayed,
    };
  }

  /** Loss and gradients, as tf.variableGrads gives them. */
  gradientStep(f: () => tf.Scalar): GradientStep {
    const vars = [...this.vars];
    const { outputs, extra, replayed } = this.gradient.run(
      f,
      [],
      (forward) => {
        const { value, grads } = tf.variableGrads(forward, vars);
        const has = vars.map((v) => grads[v.name] != null);
        return {
          outputs: [value, ...vars.flatMap((v) => (grads[v.name] ? [grads[v.name]!] : []))],
          extra: has,
        };
      },
      vars,
    );
    let next = 1;
    return {
      loss: outputs[0] as tf.Scalar,
      grads: extra.map((has) => (has ? outputs[next++]! : null)),
      replayed,
    };
  }

  dispose(): void {
    this.hutchinson.dispose();
    this.gradient.dispose();
  }
}
