/**
 * Relu's mask multiplied at max pooling's winners instead of over the whole activation, in the
 * Hessian-vector sweep of a relu followed by a tiling max pool (the small CNN's conv, relu,
 * 2x2 pool): per sweep gradient of such a pool, one full-size product becomes a pooled-size one.
 *
 * Why: the relu gradient is dy * mask(z) (+0, 1, or NaN where z is NaN: translate.ts's Step
 * as Div(Cast(z > 0), Cast(z == z)), or its ReluGrad as Where(IsNaN(z), z, Cast(z > 0))), and
 * next to a max pool's gradient only one element per window matters. The sweep has two such
 * products per pooling ([64, 28, 28, 16] at the demo's batch 64). The first-order graph has one
 * per pooling (the gradient's) and is left as it is.
 *
 * The mask at each window's winner comes from the scan that chose the winner (translate-conv.ts's
 * tiledWinners over the positions of Relu(z)): the winning value is > 0 exactly where the last
 * position or the best before it is > 0 (NaN > 0 is false), so Cast(Or(last > 0, before > 0)).
 * That is the mask there: a winner is never NaN, ONNX Runtime's Relu keeps NaN (so z is not NaN
 * there; the tests pin it) and Relu(z) > 0 exactly where z > 0. No Where: ONNX Runtime runs
 * Where as three passes (select x, select y, merge by x != 0 ? x : y, which also makes -0 +0).
 *
 *   1. The transposes (ADAHESSIAN_POOL_MASKS=1 and 2): max-pool-indices.ts's GatherElements of
 *      (t * mask) becomes gather(t) * (mask at the winner). Element for element the same product
 *      of the same values: bit for bit, NaN, Infinity and -0 included; windows without a winner
 *      are still set to +0 after it.
 *   2. The MaxPoolGrads (2, the default): translate-conv.ts's tiledMaxPoolGrad (per window
 *      position Where(winner here, dy, +0), concatenated) then * mask becomes the same with
 *      dy * (mask at the winner). At the winner the same product, except that ONNX Runtime's
 *      Where writes +0 for a -0 (a dead window's winner with dy < 0: dy * 0 = -0): a sign of a
 *      zero, which the filter and bias gradients' sums that read it do not see unless every term
 *      is zero. Elsewhere +0, as +0 * mask gave, except where z is NaN (+0 * NaN = NaN before).
 *      So only the second and later such products of each z are rewritten (in node order; the
 *      gradient's comes before the sweep's): the first stays NaN there, and so is the step's
 *      gradient of the layer below, whatever the sweep gives.
 *
 * Graphs without a relu mask next to a tiling max pool's gradient (the char transformer,
 * ResNet-20, first-order graphs) come back unchanged. ADAHESSIAN_POOL_MASKS=0 leaves every
 * graph as it is, =1 takes only the exact rewrite (A/Bs; docs/PERFORMANCE.md, eleventh session).
 */
import type { OnnxNode, OnnxTensorInitializer } from '../onnx-model.js';
import { indexNodes } from './node-index.js';

export interface PoolReluMaskContext {
  /** Shapes of named values (the recording's values and externals, and reshapes of them). */
  shapes: ReadonlyMap<string, readonly number[]>;
  /** The graph's constants (the mask's 0, the Where's 0, the winners' offsets). */
  initializers: readonly OnnxTensorInitializer[];
  /** Names of the graph's outputs. */
  outputs: readonly string[];
  /** Told of each new node and the node it stands for (profiles credit the same call). */
  derived?(node: OnnxNode, from: OnnxNode): void;
}

/** Which rewrites run: ADAHESSIAN_POOL_MASKS=0 none, 1 the transposes', 2 (default) both. */
export function poolReluMaskLevel(): 0 | 1 | 2 {
  const v = process.env['ADAHESSIAN_POOL_MASKS'];
  return v === '0' ? 0 : v === '1' ? 1 : 2;
}

/** The nodes with relu masks multiplied at pooling winners where the patterns allow. */
export function foldPoolReluMasks(
  nodes: readonly OnnxNode[],
  ctx: PoolReluMaskContext,
): OnnxNode[] {
  const level = poolReluMaskLevel();
  if (level === 0) return [...nodes];
  const { producer, soleReader } = indexNodes(nodes, ctx.outputs);
  const constants = new Map(ctx.initializers.map((i) => [i.name, i]));
  /** A float32 scalar (or one-element) constant's value, else null. */
  const floatConstant = (name: string): number | null => {
    const init = constants.get(name);
    if (init == null || init.dtype !== 'float32' || init.raw.byteLength !== 4) return null;
    return new DataView(init.raw.buffer, init.raw.byteOffset, 4).getFloat32(0, true);
  };
  const isPositiveZero = (name: string) => Object.is(floatConstant(name), 0);
  const sameShape = (a: string, b: string) => {
    const sa = ctx.shapes.get(a);
    const sb = ctx.shapes.get(b);
    return sa != null && sb != null && sa.join(',') === sb.join(',');
  };

  /** z where `positive` is Cast(Greater(z, +0)) to float32. */
  const positiveOf = (positive: OnnxNode | undefined): { z: string; zero: string } | null => {
    if (positive?.opType !== 'Cast' || positive.attributes?.['to']?.value !== 1) return null;
    const greater = producer.get(positive.inputs[0]!);
    if (greater?.opType !== 'Greater') return null;
    const [z, zero] = greater.inputs as [string, string];
    return isPositiveZero(zero) ? { z, zero } : null;
  };
  /**
   * z where `name` is relu's mask of z (+0, 1, or NaN where z is NaN) as translate.ts writes it:
   * Step(z), Div(Cast(z > 0), Cast(z == z)), or ReluGrad's Where(IsNaN(z), z, Cast(z > 0)).
   */
  const maskOf = (name: string): { z: string; zero: string } | null => {
    const node = producer.get(name);
    if (node == null || node.domain != null) return null;
    let step: { z: string; zero: string } | null = null;
    if (node.opType === 'Div') {
      step = positiveOf(producer.get(node.inputs[0]!));
      const notNaN = producer.get(node.inputs[1]!);
      const equal = notNaN?.opType === 'Cast' ? producer.get(notNaN.inputs[0]!) : undefined;
      const ok =
        notNaN?.attributes?.['to']?.value === 1 &&
        equal?.opType === 'Equal' &&
        equal.inputs.every((i) => i === step?.z);
      if (!ok) return null;
    } else if (node.opType === 'Where') {
      step = positiveOf(producer.get(node.inputs[2]!));
      const nan = producer.get(node.inputs[0]!);
      if (nan?.opType !== 'IsNaN' || nan.inputs[0] !== step?.z || node.inputs[1] !== step.z) {
        return null;
      }
    }
    return step != null && sameShape(step.z, name) ? step : null;
  };
  /** The relu mask and the other operand of Mul `node`, if one side is a mask of its shape. */
  const maskProduct = (node: OnnxNode) => {
    if (node.opType !== 'Mul' || node.domain != null || node.inputs.length !== 2) return null;
    for (const side of [0, 1]) {
      const [mask, other] = [node.inputs[side]!, node.inputs[1 - side]!];
      const step = maskOf(mask);
      if (step != null && sameShape(other, mask) && sameShape(node.outputs[0]!, mask)) {
        return { mask, other, ...step };
      }
    }
    return null;
  };

  let temps = 0;
  const temp = (base: string) => `${base}_pm${temps++}`;
  /**
   * Nodes writing relu's mask at each window's winner (float32, the winners' shape) from the
   * scan that chose `winner` over the window positions of Relu(z) (the header says why that is
   * the mask there); null where `winner` is not such a scan's.
   */
  const maskAtWinners = (winner: string, z: string, zero: string) => {
    const last = producer.get(winner);
    const taken = last?.opType === 'Where' ? producer.get(last.inputs[0]!) : undefined;
    if (taken?.opType !== 'Greater') return null;
    const [position, bestBefore] = taken.inputs as [string, string];
    // The last window position: Split(Split(Reshape(Relu(z)))), rows then columns.
    const columns = producer.get(position);
    const rowsOf = columns?.opType === 'Split' ? producer.get(columns.inputs[0]!) : undefined;
    const view = rowsOf?.opType === 'Split' ? producer.get(rowsOf.inputs[0]!) : undefined;
    const relu = view?.opType === 'Reshape' ? producer.get(view.inputs[0]!) : undefined;
    if (relu?.opType !== 'Relu' || relu.domain != null || relu.inputs[0] !== z) return null;
    const [lastAlive, beforeAlive, alive, mask] = [1, 2, 3, 4].map(() => temp(winner)) as [
      string,
      string,
      string,
      string,
    ];
    const nodesHere: OnnxNode[] = [
      { opType: 'Greater', inputs: [position, zero], outputs: [lastAlive] },
      { opType: 'Greater', inputs: [bestBefore, zero], outputs: [beforeAlive] },
      { opType: 'Or', inputs: [lastAlive, beforeAlive], outputs: [alive] },
      {
        opType: 'Cast',
        inputs: [alive],
        outputs: [mask],
        attributes: { to: { kind: 'int', value: 1 } },
      },
    ];
    return { nodes: nodesHere, mask };
  };

  const replacing = new Map<OnnxNode, OnnxNode[]>();
  const removed = new Set<OnnxNode>();
  const make = (from: OnnxNode, node: OnnxNode): OnnxNode => {
    ctx.derived?.(node, from);
    return node;
  };

  // 1. Transposes: GatherElements(Reshape(t * mask), columns) -> gather(t) * mask at winners.
  for (const gather of nodes) {
    if (gather.opType !== 'GatherElements' || gather.domain != null) continue;
    if (gather.attributes?.['axis']?.value !== 1) continue;
    const [viewed, columns] = gather.inputs as [string, string];
    const view = producer.get(viewed);
    if (view?.opType !== 'Reshape' || !soleReader(viewed)) continue;
    const product = producer.get(view.inputs[0]!);
    if (product == null || removed.has(product) || !soleReader(view.inputs[0]!)) continue;
    const operands = maskProduct(product);
    if (operands == null) continue;
    // max-pool-indices.ts's columns: Cast(Add(Reshape(winner, [rows, ow * C]), starts)).
    const cast = producer.get(columns);
    const add = cast?.opType === 'Cast' ? producer.get(cast.inputs[0]!) : undefined;
    const offsets = add?.opType === 'Add' ? producer.get(add.inputs[0]!) : undefined;
    if (offsets?.opType !== 'Reshape') continue;
    const atWinners = maskAtWinners(offsets.inputs[0]!, operands.z, operands.zero);
    if (atWinners == null) continue;
    const out = gather.outputs[0]!;
    const [tView, tAt, maskAt] = [temp(out), temp(out), temp(out)];
    const asIs: OnnxNode[] = [
      { opType: 'Reshape', inputs: [operands.other, view.inputs[1]!], outputs: [tView] },
      { ...gather, inputs: [tView, columns], outputs: [tAt] },
      ...atWinners.nodes,
      { opType: 'Reshape', inputs: [atWinners.mask, offsets.inputs[1]!], outputs: [maskAt] },
      { ...product, inputs: [tAt, maskAt], outputs: [out] },
    ];
    replacing.set(
      gather,
      asIs.map((node) => make(gather, node)),
    );
    removed.add(product).add(view);
  }
  if (level < 2) return nodes.flatMap((n) => (removed.has(n) ? [] : (replacing.get(n) ?? [n])));

  // 2. MaxPoolGrad then the mask: all but each z's first such product, in node order.
  const seenZ = new Set<string>();
  for (const product of nodes) {
    if (removed.has(product)) continue;
    const operands = maskProduct(product);
    if (operands == null) continue;
    const grad = tiledMaxPoolGrad(operands.other);
    if (grad == null) continue;
    if (!seenZ.has(operands.z)) {
      seenZ.add(operands.z);
      continue;
    }
    const { wheres, dy, winner, concats, reshape } = grad;
    const atWinners = maskAtWinners(winner, operands.z, operands.zero);
    if (atWinners == null) continue;
    const scaled = temp(product.outputs[0]!);
    const asIs: OnnxNode[] = [
      ...atWinners.nodes,
      // The winners' shape is dy's: [N * oh, 1, ow, C].
      { opType: 'Mul', inputs: [dy, atWinners.mask], outputs: [scaled] },
      ...wheres.map((where) => ({
        ...where,
        inputs: [where.inputs[0]!, scaled, where.inputs[2]!],
      })),
      ...concats,
      { ...reshape, outputs: [product.outputs[0]!] },
    ];
    const nodesHere = asIs.map((node) => make(product, node));
    // Everything from the first Where to the Reshape moves to the product's place.
    for (const node of [...wheres, ...concats, reshape]) removed.add(node);
    replacing.set(product, nodesHere);
  }
  return nodes.flatMap((n) => (removed.has(n) ? [] : (replacing.get(n) ?? [n])));

  /**
   * translate-conv.ts's tiledMaxPoolGrad whose output is `name`: Reshape(Concat(Concat(Where(
   * Equal(winner, offset), dy, +0), ...), ...)) of windows that tile the input exactly, each
   * intermediate read once, the offsets those of the gathered form ((i * W + j) * C).
   */
  function tiledMaxPoolGrad(name: string) {
    const reshape = producer.get(name);
    if (reshape?.opType !== 'Reshape' || !soleReader(name) || !soleReader(reshape.inputs[0]!)) {
      return null;
    }
    const outShape = ctx.shapes.get(name);
    if (outShape?.length !== 4) return null;
    const [n, h, w, c] = outShape as [number, number, number, number];
    const blocks = producer.get(reshape.inputs[0]!);
    if (blocks?.opType !== 'Concat' || blocks.attributes?.['axis']?.value !== 1) return null;
    const fh = blocks.inputs.length;
    const concats: OnnxNode[] = [];
    const wheres: OnnxNode[] = [];
    for (const rowName of blocks.inputs) {
      const row = producer.get(rowName);
      if (row?.opType !== 'Concat' || row.attributes?.['axis']?.value !== 3) return null;
      if (!soleReader(rowName)) return null;
      if (concats.length > 0 && row.inputs.length !== concats[0]!.inputs.length) return null;
      concats.push(row);
      for (const partName of row.inputs) {
        const where = producer.get(partName);
        if (where?.opType !== 'Where' || !soleReader(partName)) return null;
        wheres.push(where);
      }
    }
    concats.push(blocks);
    const fw = wheres.length / fh;
    const dy = wheres[0]!.inputs[1]!;
    const dyShape = ctx.shapes.get(dy);
    if (dyShape?.length !== 4 || h % fh !== 0 || w % fw !== 0) return null;
    const [oh, ow] = [h / fh, w / fw];
    if (dyShape.join(',') !== [n * oh, 1, ow, c].join(',')) return null;
    let winner: string | null = null;
    for (const [t, where] of wheres.entries()) {
      if (where.inputs[1] !== dy || !isPositiveZero(where.inputs[2]!)) return null;
      const at = producer.get(where.inputs[0]!);
      if (at?.opType !== 'Equal') return null;
      winner ??= at.inputs[0]!;
      const offset = (Math.floor(t / fw) * w + (t % fw)) * c;
      if (at.inputs[0] !== winner || floatConstant(at.inputs[1]!) !== offset) return null;
    }
    return {
      wheres,
      dy,
      winner: winner!,
      concats,
      reshape,
    };
  }
}
