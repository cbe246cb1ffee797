/**
 * Who writes and who reads each value of a list of built nodes: what the rewrites on built
 * nodes (conv-pairs.ts, conv-bias.ts, filter-grad-pairs.ts, pool-relu-masks.ts) look their
 * patterns up in. A rewrite may take a value over only when its one reader is the node being
 * rewritten, and a graph output counts as a reader (it must stay written).
 */
import type { OnnxNode } from '../onnx-model.js';

export interface NodeIndex {
  /** Per value name, the node that writes it (none for graph inputs and initializers). */
  producer: ReadonlyMap<string, OnnxNode>;
  /** Per node, its place in the list. */
  position: ReadonlyMap<OnnxNode, number>;
  /** Whether `name` has one reader: one node input, or only being a graph output. */
  soleReader(name: string): boolean;
}

/** The index of `nodes`, whose graph outputs are `outputs`. */
export function indexNodes(nodes: readonly OnnxNode[], outputs: readonly string[]): NodeIndex {
  const producer = new Map<string, OnnxNode>();
  const readers = new Map<string, number>();
  const position = new Map<OnnxNode, number>();
  nodes.forEach((node, i) => {
    position.set(node, i);
    for (const out of node.outputs) producer.set(out, node);
    for (const input of node.inputs) readers.set(input, (readers.get(input) ?? 0) + 1);
  });
  for (const out of outputs) readers.set(out, (readers.get(out) ?? 0) + 1);
  return { producer, position, soleReader: (name) => readers.get(name) === 1 };
}
