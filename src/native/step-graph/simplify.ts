/**
 * Rewrites of a built step graph (build.ts) before ONNX Runtime sees it, each one giving the
 * same values bit for bit (no reordered arithmetic), only fewer or smaller passes over memory.
 *
 * Why: TF.js's gradients broadcast with Tile (a full-size copy), and tf.layers' layer norm tiles
 * its mean and variance to the input's full shape before a 4-D batch norm. Everything computed
 * from those tiled tensors alone (variance + epsilon, its square root, the rsqrt gradient's
 * x^1.5, ...) then runs over [batch, context, d] elements where [batch, context, 1] hold the
 * same values; ONNX Runtime does not see through that (its fusions find no such pattern), and
 * on the char transformer those passes were ~8 % of the step graph's node time.
 *
 * The passes, in order:
 *   1. sinkBroadcasts: an element-wise node whose inputs are broadcasts (Expand, or a Tile of
 *      size-1 axes) of smaller tensors, or small themselves, is computed on the smaller
 *      operands, and its result broadcast afterwards (numpy broadcasting: each output element
 *      is the same operation on the same input values). Repeats down the chain; a Reshape
 *      that only adds or drops size-1 axes carries the smaller form along.
 *   2. broadcastInsteadOfTile: a broadcast whose every reader is an element-wise op that
 *      broadcasts its operands anyway (and keeps its result's shape) is read unbroadcast.
 *   3. Dead nodes (whose outputs nothing reads any more) go.
 */
import type { OnnxNode, OnnxTensorInitializer } from '../onnx-model.js';

export interface SimplifyContext {
  /** Shapes of every named value known before the rewrites (inputs, recorded values). */
  shapes: Map<string, number[]>;
  initializers: OnnxTensorInitializer[];
  /** Names of the graph's outputs (never removed). */
  outputs: readonly string[];
  /** A constant int64 1-D tensor's name (a new Expand's shape). */
  int64s(values: readonly number[]): string;
  /** Told of each new node and the node it was derived from (profiles credit the same call). */
  derived?(node: OnnxNode, from: OnnxNode): void;
  /** Passes to leave out (benchmarks measure what each buys). */
  skip?: readonly SimplifyPass[];
}

export type SimplifyPass = 'sinkBroadcasts' | 'broadcastInsteadOfTile';

/** Element-wise ops with one input. */
const UNARY = new Set([
  'Neg',
  'Sqrt',
  'Reciprocal',
  'Exp',
  'Log',
  'Erf',
  'Abs',
  'Relu',
  'Identity',
  'Tanh',
  'Sigmoid',
  'Sign',
  'Floor',
  'Not',
  'IsNaN',
  'Cast',
]);

/** Element-wise ops that broadcast their inputs as numpy does. */
const BROADCASTING = new Set([
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Pow',
  'Max',
  'Min',
  'Where',
  'Equal',
  'Greater',
  'Less',
  'GreaterOrEqual',
  'LessOrEqual',
  'And',
  'Or',
]);

export function simplifyGraph(nodes: OnnxNode[], ctx: SimplifyContext): OnnxNode[] {
  const consts = new Map(ctx.initializers.map((i) => [i.name, i]));
  const int64s = (values: readonly number[]) => {
    const name = ctx.int64s(values);
    if (!consts.has(name))
      consts.set(
        name,
        ctx.initializers.find((i) => i.name === name)!,
      );
    return name;
  };
  const skip = new Set(ctx.skip ?? []);
  inferShapes(nodes, ctx.shapes, consts);
  let result = nodes;
  if (!skip.has('sinkBroadcasts')) result = sinkBroadcasts(result, { ...ctx, int64s }, consts);
  if (!skip.has('broadcastInsteadOfTile'))
    result = broadcastInsteadOfTile(result, ctx.shapes, consts);
  return withoutDeadNodes(result, ctx.outputs);
}

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const same = (a: readonly number[], b: readonly number[]) => a.join(',') === b.join(',');

function int64Values(init: OnnxTensorInitializer | undefined): number[] | null {
  if (init == null || init.dtype !== 'int64') return null;
  const raw = init.raw;
  return Array.from(new BigInt64Array(raw.buffer, raw.byteOffset, raw.byteLength / 8), Number);
}

/** numpy's broadcast of shapes, or null when they do not broadcast. */
export function broadcastShape(shapes: readonly (readonly number[])[]): number[] | null {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let a = 0; a < rank; a++) {
    let d = 1;
    for (const s of shapes) {
      const k = s[s.length - rank + a] ?? 1;
      if (k !== 1 && d !== 1 && k !== d) return null;
      if (k !== 1) d = k;
    }
    out.push(d);
  }
  return out;
}

/** Shapes of the translations' intermediates, where the op makes them easy to infer. */
function inferShapes(
  nodes: readonly OnnxNode[],
  shapes: Map<string, number[]>,
  consts: Map<string, OnnxTensorInitializer>,
): void {
  const shapeOf = (n: string) => shapes.get(n) ?? (consts.get(n)?.dims as number[] | undefined);
  for (const node of nodes) {
    const out = node.outputs[0]!;
    if (shapes.has(out)) continue;
    const ins = node.inputs.map(shapeOf);
    if (BROADCASTING.has(node.opType) && ins.every((x) => x != null)) {
      const b = broadcastShape(ins as number[][]);
      if (b != null) shapes.set(out, b);
    } else if (UNARY.has(node.opType) && ins[0] != null) {
      shapes.set(out, ins[0]);
    } else if (node.opType === 'Expand' && ins[0] != null) {
      const target = int64Values(consts.get(node.inputs[1]!));
      const b = target && broadcastShape([ins[0], target]);
      if (b != null) shapes.set(out, b);
    } else if (node.opType === 'Reshape') {
      const target = int64Values(consts.get(node.inputs[1]!));
      if (target != null && target.every((d) => d > 0)) shapes.set(out, target);
    }
  }
}

/**
 * `small` (a shape that broadcasts to `from`) carried through a Reshape from `from` to `to`,
 * or null when the reshape mixes broadcast and non-broadcast axes. Size-1 axes aside, the two
 * shapes split into blocks of equal products ([4096, 64] and [64, 64, 64]: 4096 | 64 * 64 and
 * 64 | 64); a block whose axes are all broadcast stays broadcast, one whose axes are all whole
 * stays whole, in the new shape.
 */
export function reshapedSmall(
  small: readonly number[],
  from: readonly number[],
  to: readonly number[],
): number[] | null {
  const aligned = [...Array<number>(from.length - small.length).fill(1), ...small];
  const fromAxes = from.flatMap((d, a) => (d === 1 ? [] : [a]));
  const toAxes = to.flatMap((d, a) => (d === 1 ? [] : [a]));
  const result = to.map(() => 1);
  let i = 0;
  let j = 0;
  while (i < fromAxes.length && j < toAxes.length) {
    // One block: the shortest runs of both shapes with equal products.
    const fromBlock = [fromAxes[i++]!];
    const toBlock = [toAxes[j++]!];
    let p = from[fromBlock[0]!]!;
    let q = to[toBlock[0]!]!;
    while (p !== q) {
      if (p < q && i < fromAxes.length) {
        fromBlock.push(fromAxes[i++]!);
        p *= from[fromBlock.at(-1)!]!;
      } else if (q < p && j < toAxes.length) {
        toBlock.push(toAxes[j++]!);
        q *= to[toBlock.at(-1)!]!;
      } else return null;
    }
    const broadcast = fromBlock.every((a) => aligned[a] === 1);
    const whole = fromBlock.every((a) => aligned[a] === from[a]);
    if (!broadcast && !whole) return null;
    if (whole) for (const a of toBlock) result[a] = to[a]!;
  }
  return i === fromAxes.length && j === toAxes.length ? result : null;
}

function sinkBroadcasts(
  nodes: readonly OnnxNode[],
  ctx: SimplifyContext,
  consts: Map<string, OnnxTensorInitializer>,
): OnnxNode[] {
  const { shapes } = ctx;
  const shapeOf = (n: string) => shapes.get(n) ?? (consts.get(n)?.dims as number[] | undefined);
  /** A value -> a smaller value whose broadcast it is. */
  const smallOf = new Map<string, string>();
  const out: OnnxNode[] = [];
  const emit = (node: OnnxNode, from: OnnxNode) => {
    out.push(node);
    ctx.derived?.(node, from);
  };
  /** `full` as the broadcast of `small`, and `small` remembered as its smaller form. */
  const broadcastTo = (small: string, full: string, fullShape: number[], from: OnnxNode) => {
    emit({ opType: 'Expand', inputs: [small, ctx.int64s(fullShape)], outputs: [full] }, from);
    smallOf.set(full, small);
  };
  let fresh = 0;
  for (const node of nodes) {
    const result = node.outputs[0]!;
    const resultShape = shapes.get(result);
    const ins = node.inputs.map(shapeOf);
    if (node.outputs.length !== 1 || resultShape == null || ins.some((s) => s == null)) {
      out.push(node);
      continue;
    }
    if (node.opType === 'Expand' || node.opType === 'Tile') {
      const x = node.inputs[0]!;
      const xShape = ins[0]!;
      const b = broadcastShape([xShape, resultShape]);
      const isBroadcast =
        b != null &&
        same(b, resultShape) &&
        (node.opType === 'Expand' ||
          (xShape.length === resultShape.length &&
            (int64Values(consts.get(node.inputs[1]!)) ?? []).every(
              (r, a) => r === 1 || xShape[a] === 1,
            )));
      if (isBroadcast && sizeOf(xShape) < sizeOf(resultShape)) {
        smallOf.set(result, smallOf.get(x) ?? x);
      }
      out.push(node);
      continue;
    }
    const elementwise = BROADCASTING.has(node.opType) || UNARY.has(node.opType);
    if (elementwise && node.inputs.some((n) => smallOf.has(n))) {
      const smallInputs = node.inputs.map((n) => smallOf.get(n) ?? n);
      const smallShape = broadcastShape(smallInputs.map((n) => shapeOf(n)!));
      const back = smallShape && broadcastShape([smallShape, resultShape]);
      if (smallShape != null && back != null && same(back, resultShape)) {
        if (sizeOf(smallShape) < sizeOf(resultShape)) {
          const small = `${result}_b${fresh++}`;
          shapes.set(small, smallShape);
          emit({ ...node, inputs: smallInputs, outputs: [small] }, node);
          broadcastTo(small, result, resultShape, node);
          continue;
        }
      }
    }
    if (node.opType === 'Reshape' && smallOf.has(node.inputs[0]!)) {
      const small = smallOf.get(node.inputs[0]!)!;
      const carried = reshapedSmall(shapeOf(small)!, ins[0]!, resultShape);
      if (carried != null) {
        const name = `${result}_b${fresh++}`;
        shapes.set(name, carried);
        emit({ opType: 'Reshape', inputs: [small, ctx.int64s(carried)], outputs: [name] }, node);
        broadcastTo(name, result, resultShape, node);
        continue;
      }
    }
    out.push(node);
  }
  return out;
}

/**
 * TF.js's gradients of sums and means broadcast with Tile (a full-size copy); where every
 * reader of a Tile's or Expand's output is an element-wise op whose other operands already
 * have the full shape, the unbroadcast tensor is read instead (numpy broadcasting gives the
 * same values) and the Tile goes.
 */
function broadcastInsteadOfTile(
  nodes: OnnxNode[],
  shapes: Map<string, number[]>,
  consts: Map<string, OnnxTensorInitializer>,
): OnnxNode[] {
  const shapeOf = (n: string) => shapes.get(n) ?? (consts.get(n)?.dims as number[] | undefined);
  const readers = new Map<string, OnnxNode[]>();
  for (const node of nodes) {
    for (const input of node.inputs) readers.set(input, [...(readers.get(input) ?? []), node]);
  }
  const dropped = new Set<OnnxNode>();
  for (const node of nodes) {
    if (node.opType !== 'Tile' && node.opType !== 'Expand') continue;
    const [x, repsName] = node.inputs as [string, string];
    const out = node.outputs[0]!;
    const xShape = shapeOf(x);
    const outShape = shapes.get(out);
    const reps = int64Values(consts.get(repsName));
    if (xShape == null || outShape == null || reps == null) continue;
    if (node.opType === 'Tile') {
      const broadcast = reps.every((k, a) => k === 1 || xShape[a] === 1);
      if (xShape.length !== outShape.length || !broadcast) continue;
    }
    const users = readers.get(out) ?? [];
    // Each reader's result must keep its shape when it reads x instead.
    const sameResult = (u: OnnxNode) => {
      const withOut = u.inputs.map(shapeOf);
      const withX = u.inputs.map((n) => (n === out ? xShape : shapeOf(n)));
      if (withOut.some((s) => s == null)) return false;
      const a = broadcastShape(withOut as number[][]);
      const b = broadcastShape(withX as number[][]);
      return a != null && b != null && same(a, b);
    };
    const ok = users.length > 0 && users.every((u) => BROADCASTING.has(u.opType) && sameResult(u));
    if (!ok) continue;
    for (const u of users)
      (u as unknown as { inputs: string[] }).inputs = u.inputs.map((name) =>
        name === out ? x : name,
      );
    dropped.add(node);
  }
  return nodes.filter((n) => !dropped.has(n));
}

/** The nodes some output depends on. */
function withoutDeadNodes(nodes: readonly OnnxNode[], outputs: readonly string[]): OnnxNode[] {
  const needed = new Set(outputs);
  const kept: boolean[] = new Array(nodes.length).fill(false);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i]!;
    if (!node.outputs.some((o) => needed.has(o))) continue;
    kept[i] = true;
    for (const input of node.inputs) needed.add(input);
  }
  return nodes.filter((_, i) => kept[i]);
}
