/**
 * Chains of accumulating Adds, ((a + b) + c) + d, become one variadic Sum(a, b, c, d).
 *
 * Why: TF.js's gradients (and the Hessian-vector sweep) accumulate a tensor's contributions one
 * binary Add at a time. ONNX Runtime's CPU Sum (element_wise_ops.cc: Sum_8 ->
 * UntypedBroadcastVariadic) adds its inputs pairwise in order, input 0 + input 1, then that + input
 * 2, ..., each step the same Eigen float32 addition with numpy broadcasting as an Add: so the Sum
 * gives the chain's value bit for bit (float addition is commutative, so the running value may be
 * either operand of each Add). It is NOT one pass over memory: it still makes a temporary per step,
 * on one thread. What it saves is the nodes (bench/speed/sum-chain.ts measures it).
 *
 * The pattern: an Add whose output has exactly one reader, an Add, and is not a graph output
 * joins that reader's chain; the chain's other operands become the Sum's inputs in the order the
 * chain adds them. Where both operands of an Add are such chains ((a + b) + (c + d)), only the
 * first joins (Sum(a, b, c + d) adds as the chain did). float32 only (ONNX Runtime's Sum). The Sum
 * takes the place of the chain's last Add (every operand exists by then).
 *
 * Off by default; ADAHESSIAN_SUM_CHAINS=1 turns it on (build.ts; step-graph-profile.ts --ab
 * sumchains=1). Measured in-process on the char transformer, its first-order graph, the small CNN
 * and ResNet-20 (docs/PERFORMANCE.md, tenth session, engineer B): the same bits and no gain beyond
 * the noise (process CPU 0.98-1.04), since the passes stay; and the Sum's steps run on one thread
 * (ONNX Runtime parallelises an Add, not a Sum), and each operand lives until the last one is
 * added (a chain frees them as it goes).
 */
import type { OnnxNode } from '../onnx-model.js';

export interface SumChainContext {
  /** Names of the graph's outputs (never fused away). */
  outputs: readonly string[];
  /** A named value's dtype, where known (a chain is fused only if one of its names is float32). */
  dtypeOf(name: string): string | undefined;
  /** Told of each new node and the node it stands for (profiles credit the same call). */
  derived?(node: OnnxNode, from: OnnxNode): void;
}

const isAdd = (n: OnnxNode | undefined) =>
  n != null && n.opType === 'Add' && n.domain == null && n.inputs.length === 2;

/** The nodes with every chain of accumulating Adds as one Sum (the others untouched). */
export function fuseSumChains(nodes: readonly OnnxNode[], ctx: SumChainContext): OnnxNode[] {
  if (process.env['ADAHESSIAN_SUM_CHAINS'] !== '1') return [...nodes];
  const producer = new Map<string, OnnxNode>();
  const readers = new Map<string, OnnxNode[]>();
  for (const node of nodes) {
    for (const out of node.outputs) producer.set(out, node);
    for (const input of node.inputs) readers.set(input, [...(readers.get(input) ?? []), node]);
  }
  const outputs = new Set(ctx.outputs);
  /** An Add whose result only one Add reads, once: it can fold into that Add's Sum. */
  const joins = (add: OnnxNode, into: OnnxNode) => {
    const out = add.outputs[0]!;
    const rs = readers.get(out) ?? [];
    return (
      isAdd(add) &&
      !outputs.has(out) &&
      rs.length === 1 &&
      rs[0] === into &&
      into.inputs.filter((i) => i === out).length === 1
    );
  };
  /** Per Add that ends a chain, its Sum's inputs; the Adds folded into it. */
  const sums = new Map<OnnxNode, string[]>();
  const folded = new Set<OnnxNode>();
  for (let i = nodes.length - 1; i >= 0; i--) {
    const last = nodes[i]!;
    if (!isAdd(last) || folded.has(last)) continue;
    // Walk up the chain from its last Add: terms collected last first.
    const terms: string[] = [];
    const chain: OnnxNode[] = [];
    let add = last;
    for (;;) {
      chain.push(add);
      const [x, y] = add.inputs as [string, string];
      const px = producer.get(x);
      const py = producer.get(y);
      if (px != null && joins(px, add)) {
        terms.push(y);
        add = px;
      } else if (py != null && joins(py, add)) {
        terms.push(x);
        add = py;
      } else {
        terms.push(y, x);
        break;
      }
    }
    if (chain.length < 2) continue;
    const names = [...terms, ...chain.map((n) => n.outputs[0]!)];
    if (!names.some((n) => ctx.dtypeOf(n) === 'float32')) continue;
    sums.set(last, terms.reverse());
    for (const n of chain.slice(1)) folded.add(n);
  }
  return nodes.flatMap((n) => {
    if (folded.has(n)) return [];
    const inputs = sums.get(n);
    if (inputs == null) return [n];
    const sum: OnnxNode = { opType: 'Sum', inputs, outputs: [...n.outputs] };
    ctx.derived?.(sum, n);
    return [sum];
  });
}
