/**
 * checkSecondOrder(): a self-test users run on their own backend. Every case of the
 * coverage table is built, its Hessian-vector product compared with central finite
 * differences in float32, and the outcome reported per case.
 */
import * as tf from '@tensorflow/tfjs';
import { allSecondOrderCases, type SecondOrderCase } from './cases/index.js';
import type { SecondOrderProblem } from './cases/types.js';
import {
  compareHvpWithFiniteDifferences,
  compareHvpWithFiniteDifferencesAsync,
} from './finite-difference.js';
import { observeSecondOrderKernels } from './verified-kernels.js';

export interface SecondOrderCheckResult {
  name: string;
  group: SecondOrderCase['group'];
  backend: string;
  /** Relative error of H v against finite differences (NaN when the case threw). */
  relError: number;
  pass: boolean;
  /** The error message when the case threw. */
  error?: string;
  /** Kernels (and custom-gradient op scopes) on the case's second-order path. */
  kernels: string[];
}

export interface CheckSecondOrderOptions {
  /** Largest relative error that passes (default 1e-2; a wrong op is off by 0.3 or more). */
  tolerance?: number;
  /** Only cases whose name contains this string, or for which this returns true. */
  filter?: string | ((c: SecondOrderCase) => boolean);
  /** Called after each case, e.g. to print progress. */
  onResult?: (r: SecondOrderCheckResult) => void;
}

export const DEFAULT_FD_TOLERANCE = 1e-2;

export async function checkSecondOrder(
  options: CheckSecondOrderOptions = {},
): Promise<SecondOrderCheckResult[]> {
  await tf.ready();
  const tolerance = options.tolerance ?? DEFAULT_FD_TOLERANCE;
  const backend = tf.getBackend();
  const { filter } = options;
  const cases = allSecondOrderCases().filter((c) =>
    filter == null ? true : typeof filter === 'string' ? c.name.includes(filter) : filter(c),
  );
  const results: SecondOrderCheckResult[] = [];
  for (const c of cases) {
    if (c.skipBackends?.includes(backend)) continue;
    const result = await runCaseAsync(c, backend, tolerance);
    results.push(result);
    options.onResult?.(result);
    await new Promise((r) => setTimeout(r, 0)); // keep a browser page responsive
  }
  return results;
}

/** Runs one case, reading the numbers back synchronously (tests on cpu and wasm). */
export function runCase(
  c: SecondOrderCase,
  backend: string,
  tolerance: number,
): SecondOrderCheckResult {
  return measureCase(
    c,
    backend,
    tolerance,
    (p) => compareHvpWithFiniteDifferences(p.lossFn, p.vars).relError,
  );
}

/**
 * runCase reading its numbers back asynchronously (what checkSecondOrder runs): right on webgpu
 * too, whose synchronous reads can race the queued work (compareHvpWithFiniteDifferencesAsync).
 */
export async function runCaseAsync(
  c: SecondOrderCase,
  backend: string,
  tolerance: number,
): Promise<SecondOrderCheckResult> {
  return measureCase(
    c,
    backend,
    tolerance,
    async (p) => (await compareHvpWithFiniteDifferencesAsync(p.lossFn, p.vars)).relError,
  );
}

/**
 * The one body of runCase and runCaseAsync: builds the case, measures its relative error with
 * `measure` (synchronous or not) while recording the kernels on its second-order path, turns a
 * throw into a failed result, and disposes the problem afterwards either way.
 */
function measureCase(
  c: SecondOrderCase,
  backend: string,
  tolerance: number,
  measure: (p: SecondOrderProblem) => number,
): SecondOrderCheckResult;
function measureCase(
  c: SecondOrderCase,
  backend: string,
  tolerance: number,
  measure: (p: SecondOrderProblem) => Promise<number>,
): SecondOrderCheckResult | Promise<SecondOrderCheckResult>;
function measureCase(
  c: SecondOrderCase,
  backend: string,
  tolerance: number,
  measure: (p: SecondOrderProblem) => number | Promise<number>,
): SecondOrderCheckResult | Promise<SecondOrderCheckResult> {
  const seen = new Set<string>();
  const stop = observeSecondOrderKernels((names) => names.forEach((n) => seen.add(n)));
  const base = { name: c.name, group: c.group, backend };
  let problem: SecondOrderProblem | undefined;
  const measuredResult = (relError: number): SecondOrderCheckResult => ({
    ...base,
    relError,
    pass: relError <= tolerance,
    kernels: [...seen].sort(),
  });
  const failed = (e: unknown): SecondOrderCheckResult => {
    const error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    return { ...base, relError: NaN, pass: false, error, kernels: [...seen].sort() };
  };
  const cleanUp = () => {
    stop();
    problem?.dispose();
  };
  let measured: number | Promise<number>;
  try {
    problem = c.build();
    measured = measure(problem);
  } catch (e) {
    const result = failed(e);
    cleanUp();
    return result;
  }
  if (typeof measured === 'number') {
    const result = measuredResult(measured);
    cleanUp();
    return result;
  }
  return measured.then(measuredResult, failed).finally(cleanUp);
}
