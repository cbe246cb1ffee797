/**
 * Filter gradients that multiply the same taps are stacked into one product per tap.
 *
 * Why: translate-conv.ts writes Conv2DBackpropFilter as one MatMul per filter tap, dy^T
 * ([out, rows], transposed once by NCHWc reorders) times the tap's slice of the padded input
 * ([1, rows, in]); each product is memory-bound (K = rows is long, the result [out, in] tiny).
 * Reverse over reverse differentiates a filter gradient corr(x, dy) by both operands, so the
 * Hessian-vector sweep computes corr(xDot, dy) + corr(x, dyDot): the second term reads the same
 * taps of x as the gradient itself (ONNX Runtime's common-subexpression elimination shares the
 * slices, when it is on), and the first transposes the same dy again (CSE does not merge the
 * com.microsoft.nchwc reorders). Here the gradient's dy^T and the sweep's dyDot^T are
 * concatenated ([2 out, rows], one copy) and each tap is read by one product [2 out, in] instead
 * of two; the sweep's second transpose of dy is the gradient's. Each element of a product is
 * the same dot product, in the same order, whichever rows are stacked (MLAS splits neither K nor
 * an element's sum by M), so the values are the same bit for bit. What moves is when the
 * gradient's products run: in the sweep, with the sweep's. The first-order graph has no sweep
 * and no pair: it is untouched, and so is every graph without NCHWc filter gradients (the char
 * transformer's). Measured: bench/speed/filter-gradient-pairs.ts (the small CNN's second conv
 * alone, ~0.83 of the three per-tap groups) and docs/PERFORMANCE.md, eleventh session
 * (engineer B).
 *
 * The pattern, on the built nodes (build.ts, last pass): a group is a Concat on axis 0 of
 * MatMuls, each read by that Concat alone, all with the same left operand A, a Reshape of an
 * NCHWc ReorderOutput written channels-first (translate-conv.ts's conv2DBackpropFilterTransposedOnce).
 * Groups whose right operands (the taps) are the same values in the same order, by value
 * numbering (same operator, attributes and inputs, recursively: what CSE would merge), and
 * whose A differ are stacked: at the last group's Concat, Concat(A1, ..., Am) on axis 0, one
 * MatMul per tap (the last group's taps), their Concat [taps, sum of outs, in], and per group a
 * Slice of its rows writing what its Concat wrote. Equal A's (the same transpose written twice)
 * are read from the first. Nodes left unread are dropped and the nodes put back in a
 * topological order that keeps the original one otherwise. ADAHESSIAN_FILTER_GRAD_PAIRS=0 leaves
 * the graph as it is (A/Bs: step-graph-profile.ts --ab fgradpairs=0).
 */
import { NCHWC_DOMAIN, type OnnxNode } from '../onnx-model.js';
import { indexNodes } from './node-index.js';

export interface FilterGradPairsContext {
  /** Names of the graph's outputs. */
  outputs: readonly string[];
  /** A constant int64 1-D tensor's name (the Slices' starts, ends and axes). */
  int64s(values: readonly number[]): string;
  /** Told of each new node and the node it stands for (profiles credit the same call). */
  derived?(node: OnnxNode, from: OnnxNode): void;
}

interface Group {
  concat: OnnxNode;
  products: OnnxNode[];
  /** The left operand, [out, rows]. */
  a: string;
  out: number;
  taps: string[];
}

/** The nodes with the filter gradients that share their taps stacked (the others untouched). */
export function stackFilterGradients(
  nodes: readonly OnnxNode[],
  ctx: FilterGradPairsContext,
): OnnxNode[] {
  if (process.env['ADAHESSIAN_FILTER_GRAD_PAIRS'] === '0') return [...nodes];
  const { producer, position, soleReader } = indexNodes(nodes, ctx.outputs);

  /** Per value, the first value known to equal it (graph inputs and constants: themselves). */
  const canonical = new Map<string, string>();
  const canon = (name: string) => canonical.get(name) ?? name;
  const seen = new Map<string, readonly string[]>();
  for (const node of nodes) {
    const key = `${node.domain ?? ''}|${node.opType}|${JSON.stringify(node.attributes ?? {})}|${node.inputs.map(canon).join(',')}`;
    const first = seen.get(key);
    if (first == null) seen.set(key, node.outputs);
    else node.outputs.forEach((out, k) => canonical.set(out, canon(first[k]!)));
  }

  const groups: Group[] = [];
  for (const concat of nodes) {
    if (
      concat.opType !== 'Concat' ||
      concat.domain != null ||
      concat.attributes?.['axis']?.value !== 0 ||
      concat.inputs.length === 0
    ) {
      continue;
    }
    const products = concat.inputs.map((name) => producer.get(name));
    const a = products[0]?.inputs[0];
    if (a == null) continue;
    const reshape = producer.get(a);
    const reorder = reshape?.opType === 'Reshape' ? producer.get(reshape.inputs[0]!) : undefined;
    const out = reorder?.attributes?.['channels']?.value;
    if (
      reorder?.opType !== 'ReorderOutput' ||
      reorder.domain !== NCHWC_DOMAIN ||
      reorder.attributes?.['channels_last']?.value !== 0 ||
      typeof out !== 'number' ||
      !products.every(
        (p, k) =>
          p?.opType === 'MatMul' &&
          p.domain == null &&
          p.inputs[0] === a &&
          soleReader(concat.inputs[k]!),
      )
    ) {
      continue;
    }
    const matmuls = products as OnnxNode[];
    groups.push({ concat, products: matmuls, a, out, taps: matmuls.map((p) => p.inputs[1]!) });
  }
  if (groups.length < 2) return [...nodes];

  /** The first group's A for each transpose written more than once. */
  const firstA = new Map<string, string>();
  for (const g of groups) {
    const key = canon(g.a);
    const first = firstA.get(key);
    if (first == null) firstA.set(key, g.a);
    else if (position.get(producer.get(first)!)! < position.get(producer.get(g.a)!)!) g.a = first;
  }
  const byTaps = new Map<string, Group[]>();
  for (const g of groups) {
    const key = g.taps.map(canon).join(';');
    byTaps.set(key, [...(byTaps.get(key) ?? []), g]);
  }

  /** Per original node: what stands in its place (null: removed), and what comes before it. */
  const replaced = new Map<OnnxNode, OnnxNode | null>();
  const before = new Map<OnnxNode, OnnxNode[]>();
  let changed = false;
  for (const group of groups) {
    if (group.a === group.products[0]!.inputs[0]) continue;
    // A transpose written again: read the first one (the copy is dropped below).
    changed = true;
    for (const p of group.products) {
      const shared: OnnxNode = { ...p, inputs: [group.a, p.inputs[1]!] };
      ctx.derived?.(shared, p);
      replaced.set(p, shared);
    }
  }

  for (const stack of byTaps.values()) {
    if (stack.length < 2 || new Set(stack.map((g) => canon(g.a))).size !== stack.length) continue;
    stack.sort((x, y) => position.get(x.concat)! - position.get(y.concat)!);
    const last = stack.at(-1)!;
    const at = last.concat;
    const stackedA = `${at.outputs[0]}_stackedA`;
    const newNodes: OnnxNode[] = [
      {
        opType: 'Concat',
        inputs: stack.map((g) => g.a),
        outputs: [stackedA],
        attributes: { axis: { kind: 'int', value: 0 } },
      },
    ];
    const tapProducts = last.taps.map((tap, t) => ({
      opType: 'MatMul',
      inputs: [stackedA, tap],
      outputs: [`${at.outputs[0]}_stacked${t}`],
    }));
    const all = `${at.outputs[0]}_stacked`;
    newNodes.push(...tapProducts, {
      opType: 'Concat',
      inputs: tapProducts.map((p) => p.outputs[0]!),
      outputs: [all],
      attributes: { axis: { kind: 'int', value: 0 } },
    });
    for (const n of newNodes) ctx.derived?.(n, at);
    let offset = 0;
    for (const g of stack) {
      const rows: OnnxNode = {
        opType: 'Slice',
        inputs: [all, ctx.int64s([offset]), ctx.int64s([offset + g.out]), ctx.int64s([1])],
        outputs: g.concat.outputs,
      };
      offset += g.out;
      ctx.derived?.(rows, g.concat);
      newNodes.push(rows);
      replaced.set(g.concat, null);
      for (const p of g.products) replaced.set(p, null);
    }
    before.set(at, [...(before.get(at) ?? []), ...newNodes]);
    changed = true;
  }
  if (!changed) return [...nodes];

  const list: OnnxNode[] = [];
  for (const node of nodes) {
    list.push(...(before.get(node) ?? []));
    const now = replaced.has(node) ? replaced.get(node)! : node;
    if (now != null) list.push(now);
  }
  return topologicalOrder(dropUnread(list, ctx.outputs));
}

/** `nodes` without those whose outputs nothing reads (repeatedly). */
function dropUnread(nodes: OnnxNode[], outputs: readonly string[]): OnnxNode[] {
  let kept = nodes;
  for (;;) {
    const read = new Set([...outputs, ...kept.flatMap((n) => n.inputs)]);
    const next = kept.filter((n) => n.outputs.some((o) => read.has(o)));
    if (next.length === kept.length) return kept;
    kept = next;
  }
}

/**
 * `nodes` in an order where each node follows its inputs' producers: the given order, except
 * that a node waiting for an input comes right after the node that produces it.
 */
function topologicalOrder(nodes: OnnxNode[]): OnnxNode[] {
  const produced = new Set<string>(nodes.flatMap((n) => n.outputs));
  const ready = new Set<string>();
  const waiting = new Map<string, OnnxNode[]>();
  const out: OnnxNode[] = [];
  const missing = (n: OnnxNode) =>
    n.inputs.find((i) => i !== '' && produced.has(i) && !ready.has(i));
  const emit = (n: OnnxNode) => {
    out.push(n);
    for (const o of n.outputs) {
      ready.add(o);
      const waiters = waiting.get(o) ?? [];
      waiting.delete(o);
      for (const w of waiters) place(w);
    }
  };
  const place = (n: OnnxNode) => {
    const need = missing(n);
    if (need == null) emit(n);
    else waiting.set(need, [...(waiting.get(need) ?? []), n]);
  };
  for (const n of nodes) place(n);
  return out;
}
