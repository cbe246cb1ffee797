/**
 * When a step graph merges equal computations: the one rule both step-graph.ts (ONNX Runtime's
 * own common subexpression elimination, a session option) and build.ts (nchwc-duplicates.ts,
 * the same for the NCHWc ops that elimination skips) follow. Its own module so that neither
 * imports the other for it.
 *
 * Why the bound: a merged value lives from its first reader to its last, anywhere in the step.
 * In a big step that doubled ONNX Runtime's arena (ResNet-20: 1,073 -> 536 MB reserved without
 * it, the same CPU time); in a small one it saves recomputation (the small CNN: 21 % of its CPU
 * time) and memory is no concern. So merging stops above 1 GiB of recorded intermediates
 * (ResNet-20's AdaHessian step at batch 64: 3.4 GB; the char transformer's at context 64,
 * batch 64: 2.7 GB; the small CNN's at batch 128 and lr-text's transformer: 0.3 GB). Either way
 * the same bits (docs/PERFORMANCE.md, eighth session, ResNet-20's memory, second task).
 */
import type { Recording } from './capture.js';

/**
 * Whether a step graph keeps common subexpression elimination: only when the recording's values
 * (4 bytes per element, the most a StepDtype takes) total at most 1 GiB, or ADAHESSIAN_ORT_CSE
 * says '1' (always) or '0' (never; A/Bs).
 */
export function keepsCommonSubexpressionElimination(recording: Pick<Recording, 'values'>): boolean {
  const forced = process.env['ADAHESSIAN_ORT_CSE'];
  if (forced === '1' || forced === '0') return forced === '1';
  const bytes = recording.values.reduce(
    (sum, v) => sum + 4 * v.shape.reduce((a, b) => a * b, 1),
    0,
  );
  return bytes <= 2 ** 30;
}
