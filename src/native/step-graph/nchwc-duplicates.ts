/**
 * Equal com.microsoft.nchwc nodes (same op, inputs and attributes) computed once.
 *
 * Why: ONNX Runtime's common-subexpression elimination merges only ops it knows to be
 * deterministic, and it counts every op outside the ONNX domain as not (optimizer/utils.cc,
 * IsOperationDeterministic: "Unknown domain"). So the NCHWc reorders translate-conv.ts writes
 * stay twice where two convolutions block the same tensor: in the small CNN's AdaHessian step,
 * the sweep's backprop input blocks dy again (the gradient's already did) and its tangent of the
 * second conv blocks that conv's input again (the forward's already did). Both are the sweep's
 * own work: Adam's graph has no such pair.
 *
 * Kept out where cse.ts leaves ONNX Runtime's own elimination out (steps above 1 GiB of
 * recorded values: a merged value lives from its first use to its last, across the step), by
 * `enabled`. ADAHESSIAN_NCHWC_DUPLICATES=0 leaves the graph as it is (A/Bs).
 */
import { NCHWC_DOMAIN, type OnnxNode } from '../onnx-model.js';

export interface NchwcDuplicatesContext {
  /** Names of the graph's outputs (a node writing one is kept). */
  outputs: readonly string[];
  /** Whether to merge at all (cse.ts's keepsCommonSubexpressionElimination). */
  enabled: boolean;
}

/** The nodes with each repeat of an NCHWc node dropped and its readers reading the first. */
export function mergeNchwcDuplicates(
  nodes: readonly OnnxNode[],
  ctx: NchwcDuplicatesContext,
): OnnxNode[] {
  if (!ctx.enabled || process.env['ADAHESSIAN_NCHWC_DUPLICATES'] === '0') return [...nodes];
  const outputs = new Set(ctx.outputs);
  const first = new Map<string, OnnxNode>();
  /** A dropped node's output -> the first node's. */
  const renamed = new Map<string, string>();
  const kept: OnnxNode[] = [];
  for (const node of nodes) {
    const inputs = node.inputs.map((i) => renamed.get(i) ?? i);
    const read = inputs.some((i, k) => i !== node.inputs[k]) ? { ...node, inputs } : node;
    if (node.domain !== NCHWC_DOMAIN || node.outputs.some((o) => outputs.has(o))) {
      kept.push(read);
      continue;
    }
    const attributes = Object.entries(node.attributes ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
    const key = JSON.stringify([node.opType, inputs, node.outputs.length, attributes]);
    const earlier = first.get(key);
    if (earlier == null) {
      first.set(key, read);
      kept.push(read);
      continue;
    }
    node.outputs.forEach((o, k) => renamed.set(o, earlier.outputs[k]!));
  }
  return kept;
}
