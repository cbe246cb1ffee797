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
 *   3. biasIntoGemm: a 2-D matrix product (MatMul, maybe behind reshapes) whose only reader
 *      adds a bias along its last axis (tf.layers' dense layers) becomes one Gemm with that bias.
 *      ONNX Runtime's Gemm writes the bias into its output and adds each finished dot product
 *      to it: one pass over the [M, N] result less, and the same values bit for bit as long as
 *      MLAS sums K in one block (its stride is 256 on this machine's kernels; the pass keeps
 *      to K <= 128, what the tests pin). ONNX Runtime's own MatMul+Add fusion does not see
 *      through the Reshape that every translated product ends with.
 *   4. Dead nodes (whose outputs nothing reads any more) go.
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
  /** Element types of the recorded values and inputs (biasIntoGemm rewrites float32 only). */
  dtypes?: ReadonlyMap<string, string>;
}

export type SimplifyPass = 'sinkBroadcasts' | 'broadcastInsteadOfTile' | 'biasIntoGemm';

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
  if (!skip.has('biasIntoGemm')) result = biasIntoGemm(result, { ...ctx, int64s }, consts);
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

/** The largest K biasIntoGemm rewrites (MLAS sums K <= 256 in one block: bit for bit). */
export const GEMM_BIAS_MAX_K = 128;

/** See the header, pass 3. */
function biasIntoGemm(
  nodes: readonly OnnxNode[],
  ctx: SimplifyContext,
  consts: Map<string, OnnxTensorInitializer>,
): OnnxNode[] {
  const { shapes } = ctx;
  const shapeOf = (n: string) => shapes.get(n) ?? (consts.get(n)?.dims as number[] | undefined);
  const producer = new Map<string, OnnxNode>();
  const readers = new Map<string, number>();
  for (const node of nodes) {
    for (const o of node.outputs) producer.set(o, node);
    for (const i of node.inputs) readers.set(i, (readers.get(i) ?? 0) + 1);
  }
  const outputs = new Set(ctx.outputs);
  /** Read once, by the node being rewritten, and not a graph output. */
  const onlyRead = (name: string) => readers.get(name) === 1 && !outputs.has(name);
  /** The element type of a value, through the reshapes and copies the build put in front. */
  const dtypeOf = (name: string): string | null => {
    for (let n: string | undefined = name; n != null;) {
      const known = ctx.dtypes?.get(n) ?? consts.get(n)?.dtype;
      if (known != null) return known;
      const p = producer.get(n);
      n =
        p != null && ['Reshape', 'Identity', 'Transpose'].includes(p.opType)
          ? p.inputs[0]
          : undefined;
    }
    return null;
  };
  /** [rows, columns] of a matrix whose leading axes are all 1, else null. */
  const matrix = (shape: readonly number[] | undefined) =>
    shape != null && shape.length >= 2 && shape.slice(0, -2).every((d) => d === 1)
      ? (shape.slice(-2) as [number, number])
      : null;
  const replaced = new Map<OnnxNode, OnnxNode[]>();
  const dropped = new Set<OnnxNode>();
  for (const add of nodes) {
    if (add.opType !== 'Add' || add.inputs.length !== 2) continue;
    const sum = add.outputs[0]!;
    const sumShape = shapes.get(sum);
    if (sumShape == null) continue;
    for (const side of [0, 1]) {
      const bias = add.inputs[1 - side]!;
      const biasShape = shapeOf(bias);
      // Back through the reshapes and identities (each read once) to the product.
      let product = add.inputs[side]!;
      const between: OnnxNode[] = [];
      let p = producer.get(product);
      while ((p?.opType === 'Reshape' || p?.opType === 'Identity') && onlyRead(product)) {
        between.push(p);
        product = p.inputs[0]!;
        p = producer.get(product);
      }
      if (p?.opType !== 'MatMul' || !onlyRead(product) || biasShape == null) continue;
      const a = matrix(shapeOf(p.inputs[0]!));
      const b = matrix(shapeOf(p.inputs[1]!));
      const n = b?.[1];
      // The bias is one value per column, and the sum keeps the product's last axis (its
      // elements in the same order): each sum element is product[m, n] + bias[n].
      const perColumn =
        biasShape.length >= 1 &&
        biasShape.at(-1) === n &&
        sizeOf(biasShape) === n &&
        sumShape.at(-1) === n &&
        a != null &&
        sizeOf(sumShape) === a[0] * n;
      if (!perColumn || a[1] > GEMM_BIAS_MAX_K || dtypeOf(p.inputs[0]!) !== 'float32') continue;
      const made: OnnxNode[] = [];
      const as2d = (name: string, shape: readonly number[]) => {
        if (shapeOf(name)!.length === 2) return name;
        const r = `${name}_g${made.length}_${sum}`;
        made.push({ opType: 'Reshape', inputs: [name, ctx.int64s(shape)], outputs: [r] });
        shapes.set(r, [...shape]);
        return r;
      };
      const gemmIn = [as2d(p.inputs[0]!, a), as2d(p.inputs[1]!, b!), as2d(bias, [n!])];
      const direct = sumShape.length === 2;
      const gemmOut = direct ? sum : `${sum}_gemm`;
      made.push({ opType: 'Gemm', inputs: gemmIn, outputs: [gemmOut] });
      if (!direct) {
        shapes.set(gemmOut, [a[0], n!]);
        made.push({ opType: 'Reshape', inputs: [gemmOut, ctx.int64s(sumShape)], outputs: [sum] });
      }
      for (const m of made) ctx.derived?.(m, p);
      replaced.set(add, made);
      dropped.add(p);
      for (const b of between) dropped.add(b);
      break;
    }
  }
  return nodes.flatMap((n) => (dropped.has(n) ? [] : (replaced.get(n) ?? [n])));
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
