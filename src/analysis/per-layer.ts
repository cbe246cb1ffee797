/**
 * Curvature per weight tensor and per layer, so layers can be ranked: the trace of each
 * diagonal block of the Hessian and its top eigenvalue.
 *
 * Block traces come free with the full trace: for a Rademacher probe z, E[z_b . (Hz)_b] is
 * tr(H_bb), so one Hutchinson run estimates every block and the blocks sum to the total.
 * Top eigenvalues need Lanczos on each block H_bb (products restricted to the block's
 * variables), so they cost products per block.
 */
import * as tf from '@tensorflow/tfjs';
import {
  hutchinsonTrace,
  meanAndStdError,
  type HutchinsonTraceOptions,
} from '../estimators/hutchinson.js';
import { lanczosTopEigen, type TopEigenOptions } from '../estimators/lanczos.js';
import type { HessianOperator } from './hessian-operator.js';

/** A named group of variables (a layer, or a single weight tensor). */
export interface VariableGroup {
  name: string;
  /** Indices into the operator's variables. */
  indices: number[];
}

export interface BlockCurvature {
  name: string;
  /** Names of the weight tensors in this block. */
  variables: string[];
  /** Number of parameters. */
  size: number;
  trace: number;
  traceStdError: number;
  /** Top eigenvalue (largest magnitude) of the block; null when not computed. */
  topEigenvalue: number | null;
  topEigenvalueConverged: boolean | null;
  /** True when no variable of the block receives a gradient (its block is all zeros). */
  noGradient: boolean;
}

export interface PerLayerReport {
  by: 'layer' | 'variable';
  /** The full trace from the same probes; the block traces sum to it. */
  trace: number;
  traceStdError: number;
  blocks: BlockCurvature[];
  products: number;
}

export interface PerLayerOptions {
  /** Hutchinson options for the traces (default maxIter 100, tol 1e-3). */
  trace?: Omit<HutchinsonTraceOptions, 'segments'>;
  /** Lanczos options for each block's top eigenvalue, or false to skip them (default maxIter 100, tol 1e-3). */
  topEigenvalue?: Omit<TopEigenOptions, 'topN' | 'which'> | false;
}

export async function perLayerCurvature(
  op: HessianOperator,
  groups: VariableGroup[],
  by: 'layer' | 'variable',
  names: string[],
  noGradient: ReadonlySet<number>,
  options: PerLayerOptions = {},
): Promise<PerLayerReport> {
  const trace = await hutchinsonTrace(op, { ...options.trace, segments: op.segments });
  const perVariable = trace.segments!;
  const blocks: BlockCurvature[] = [];
  let products = trace.products;
  for (const group of groups) {
    const samples = trace.samples.map((_, s) =>
      group.indices.reduce((acc, i) => acc + perVariable[i]!.samples[s]!, 0),
    );
    const { trace: blockTrace, stdError } = meanAndStdError(samples);
    const silent = group.indices.every((i) => noGradient.has(i));
    let topEigenvalue: number | null = null;
    let converged: boolean | null = null;
    if (options.topEigenvalue !== false) {
      if (silent) {
        topEigenvalue = 0;
        converged = true;
      } else {
        const result = await lanczosTopEigen(op.block(group.indices), {
          ...options.topEigenvalue,
          topN: 1,
        });
        tf.dispose(result.eigenvectors);
        products += result.products;
        topEigenvalue = result.eigenvalues[0]!;
        converged = result.converged[0]!;
      }
    }
    blocks.push({
      name: group.name,
      variables: group.indices.map((i) => names[i]!),
      size: group.indices.reduce((acc, i) => acc + op.segments[i]!, 0),
      trace: blockTrace,
      traceStdError: stdError,
      topEigenvalue,
      topEigenvalueConverged: converged,
      noGradient: silent,
    });
  }
  return {
    by,
    trace: trace.trace,
    traceStdError: trace.stdError,
    blocks,
    products,
  };
}
