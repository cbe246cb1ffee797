/**
 * The kernels whose second derivatives we have verified against central finite differences
 * (see docs/COVERAGE.md and test/autodiff/). A Hessian-vector product refuses any graph
 * that contains a kernel outside this list, naming it, rather than risk a wrong number.
 *
 * A kernel belongs here only when its registered gradient is built from taped ops whose own
 * gradients are correct, so that differentiating the gradient graph gives the exact result.
 */
import type { TapeNode } from './engine.js';

const verified = new Set<string>([
  // element-wise arithmetic and maths
  'Add',
  'AddN',
  'Sub',
  'Multiply',
  'RealDiv',
  'Neg',
  'Square',
  'SquaredDifference',
  'Sqrt',
  'Rsqrt',
  'Exp',
  'Log',
  'Log1p',
  'Reciprocal',
  'Sin',
  'Cos',
  'Tanh',
  'Sigmoid',
  'Softplus',
  'Erf',
  'Relu',
  'Relu6',
  'Step',
  'Cast',
  'Identity',
  'ZerosLike',
  'OnesLike',
  // reductions and shape
  'Sum',
  'Mean',
  'Reshape',
  'Transpose',
  'Tile',
  'ExpandDims',
  'Concat',
  'Slice',
  'Pack',
  'Unpack',
  'SplitV',
  'PadV2',
  // linear algebra
  'BatchMatMul',
]);

/** Marks kernels as verified (called by the modules that register their gradients). */
export function markSecondOrderVerified(...kernelNames: string[]): void {
  for (const k of kernelNames) verified.add(k);
}

export function isSecondOrderVerified(kernelName: string): boolean {
  return verified.has(kernelName);
}

export function secondOrderVerifiedKernels(): string[] {
  return [...verified].sort();
}

/** Raised when a Hessian-vector product would pass through an unverified kernel. */
export class UnsupportedSecondOrderError extends Error {
  override name = 'UnsupportedSecondOrderError';
  constructor(readonly kernelName: string) {
    super(
      `Kernel '${kernelName}' is on the path of this Hessian-vector product, but its second ` +
        'derivative is not verified by adahessian, so the product could be wrong. ' +
        'Supported kernels: see docs/COVERAGE.md or secondOrderVerifiedKernels().',
    );
  }
}

type PathObserver = (kernelNames: string[]) => void;
const observers = new Set<PathObserver>();

/**
 * Calls `observer` with the kernel names on the path of every Hessian-vector product from now
 * on, until the returned function is called. The coverage tooling uses it to show that each
 * verified kernel is exercised by some finite-difference case.
 */
export function observeSecondOrderKernels(observer: PathObserver): () => void {
  observers.add(observer);
  return () => observers.delete(observer);
}

export function assertSecondOrderSupported(filtered: TapeNode[]): void {
  if (observers.size > 0) {
    const names = [...new Set(filtered.map((n) => n.kernelName))];
    for (const o of observers) o(names);
  }
  for (const node of filtered) {
    if (!verified.has(node.kernelName)) throw new UnsupportedSecondOrderError(node.kernelName);
  }
}
