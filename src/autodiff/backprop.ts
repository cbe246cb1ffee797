/**
 * Reverse-mode sweep over a recorded tape. This is the engine's own algorithm
 * (filter the nodes that lie between xs and y, then walk them backwards), written
 * here so that one recorded forward + gradient graph can be swept many times, once
 * per vector, and so that every kernel on the path is checked against the list of
 * kernels whose second derivatives we have verified.
 */
import * as tf from '@tensorflow/tfjs';
import type { TapeNode } from './engine.js';

/**
 * Kernel inputs whose registered gradient is identically zero, because the kernel is piecewise
 * constant in them: Step in x (relu's gradient mask), ReluGrad in x (the same mask), and which element a pooling gradient
 * selects, in the pooled input (and output). A sweep that leaves these edges out adds no
 * zeros and skips the work that only fed them (e.g. the product into relu's mask), with the
 * same result.
 */
const ZERO_GRADIENT_INPUTS: Readonly<Record<string, readonly string[]>> = {
  Step: ['x'],
  ReluGrad: ['x'],
  MaxPoolGrad: ['input', 'output'],
  AvgPoolGrad: ['input'],
};

export interface FilterOptions {
  /** Leave out the edges of ZERO_GRADIENT_INPUTS (default false: keep every edge). */
  skipZeroGradients?: boolean;
}

/** Nodes of `tape` on some path from one of `xs` to `y`, inputs pruned to those that depend on xs. */
export function filterTape(
  tape: TapeNode[],
  xs: tf.Tensor[],
  y: tf.Tensor,
  options: FilterOptions = {},
): TapeNode[] {
  const edges = (node: TapeNode): [string, tf.Tensor][] => {
    const all = Object.entries(node.inputs);
    const zero = options.skipZeroGradients ? ZERO_GRADIENT_INPUTS[node.kernelName] : undefined;
    return zero == null ? all : all.filter(([name]) => !zero.includes(name));
  };
  const fromX = new Set<number>(xs.map((x) => x.id));
  const nodesFromX = new Set<number>();
  for (const node of tape) {
    if (edges(node).some(([, t]) => fromX.has(t.id))) {
      for (const o of node.outputs) fromX.add(o.id);
      nodesFromX.add(node.id);
    }
  }
  const leadsToY = new Set<number>([y.id]);
  const nodesToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i]!;
    if (node.outputs.some((o) => leadsToY.has(o.id))) {
      for (const [, t] of edges(node)) leadsToY.add(t.id);
      nodesToY.add(node.id);
    }
  }
  const filtered: TapeNode[] = [];
  for (const node of tape) {
    if (!nodesFromX.has(node.id) || !nodesToY.has(node.id)) continue;
    const inputs: Record<string, tf.Tensor> = {};
    for (const [name, t] of edges(node)) if (fromX.has(t.id)) inputs[name] = t;
    filtered.push({ ...node, inputs });
  }
  return filtered;
}

export interface BackpropOptions {
  /**
   * Called after each node's gradient has been taken: nothing later in the sweep reads that
   * node's saved tensors or outputs again, so a last sweep can free them as it goes.
   */
  afterNode?: (node: TapeNode) => void;
}

/**
 * Accumulates d y / d t for every tensor t on the filtered tape, starting from dy = 1.
 * Returns the gradients of `xs` (undefined where y does not depend on x). Must run inside
 * a tidy. Memory: each gradient function's temporaries are freed when it returns, and a
 * node's output gradients once the node is done (its outputs appear in no earlier node), so
 * the sweep holds only the gradients still accumulating, not every one it has made.
 */
export function backprop(
  filtered: TapeNode[],
  xs: tf.Tensor[],
  y: tf.Tensor,
  options: BackpropOptions = {},
): (tf.Tensor | undefined)[] {
  const grads = new Map<number, tf.Tensor>();
  // A gradient function may hand back a tensor it was given (dy itself); free only tensors
  // no longer held in `grads`.
  const release = (t: tf.Tensor) => {
    for (const held of grads.values()) if (held === t) return;
    t.dispose();
  };
  grads.set(y.id, tf.onesLike(y));
  for (let i = filtered.length - 1; i >= 0; i--) {
    const node = filtered[i]!;
    const dys = node.outputs.map((o) => grads.get(o.id) ?? tf.zeros(o.shape, o.dtype));
    for (const o of node.outputs) grads.delete(o.id);
    if (node.gradient == null) {
      throw new Error(
        `Cannot differentiate through kernel '${node.kernelName}': it has no gradient.`,
      );
    }
    const inputGrads = node.gradient(dys);
    for (const [name, x] of Object.entries(node.inputs)) {
      const gradFn = inputGrads[name];
      if (gradFn == null) {
        throw new Error(`Kernel '${node.kernelName}' gives no gradient for its input '${name}'.`);
      }
      const dx = tf.tidy(gradFn);
      const previous = grads.get(x.id);
      if (previous == null) {
        grads.set(x.id, dx);
      } else {
        grads.set(x.id, tf.add(previous, dx));
        // The node's own dys go after all its inputs are done (a later one may read them).
        if (!dys.includes(previous)) release(previous);
        if (!dys.includes(dx)) release(dx);
      }
    }
    for (const dy of dys) release(dy);
    options.afterNode?.(node);
  }
  return xs.map((x) => grads.get(x.id));
}
