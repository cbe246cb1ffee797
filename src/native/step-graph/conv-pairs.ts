/**
 * Two NCHWc convolutions whose NHWC outputs are added become one Conv that accumulates onto
 * the other's blocked output (com.microsoft.nchwc Conv's fourth input, Sum).
 *
 * Why: reverse over reverse differentiates a convolution's gradient by both of its operands, so
 * the Hessian-vector sweep adds two convolutions of the same output shape: conv(x, v) +
 * conv(dxBar, W) for the tangent of the forward conv, and the two backprop-input convolutions
 * of dy with v and of the tangent of dy with W. Each pair cost two ReorderOutputs (blocked ->
 * NHWC) and an Add pass over the output. MLAS's NCHWc Conv takes Sum: it copies Sum into its
 * output (or reuses Sum's buffer: ONNX Runtime's MayInplace) and accumulates its products there
 * instead of starting from zero, exactly as it accumulates one input-channel block after another.
 * So the second Conv starts from the first one's blocked output, and one ReorderOutput and the
 * Add go; no Concat of the inputs (what one Conv over channel-concatenated inputs, the other
 * way to sum them, needs). Rounding: the sum is formed inside MLAS's accumulation, not by one
 * float32 addition of the two finished outputs (the step graph's check against op by op
 * covers it; docs/PERFORMANCE.md, eleventh session, engineer A, has the margins).
 *
 * The pattern, on the built nodes (build.ts, after simplify.ts, before conv-bias.ts):
 * Add(ReorderOutput(Conv(a...)), ReorderOutput(Conv(b...))), both translate-conv.ts's NCHWc
 * Convs (no activation attribute, no Sum yet), both ReorderOutputs writing NHWC for the Add
 * alone with the same channel count, both Conv outputs read by their ReorderOutput alone, and
 * the Add's output the operands' shape (no broadcast). The later Conv (in node order) takes the
 * earlier one's output as Sum (an empty bias input where it had none) and stays where it was;
 * its ReorderOutput writes the Add's output. conv-bias.ts then may fold a channel bias added to
 * the sum into that Conv. ADAHESSIAN_CONV_PAIRS=0 leaves the graph as it is (A/Bs).
 */
import { NCHWC_DOMAIN, type OnnxNode } from '../onnx-model.js';
import { indexNodes } from './node-index.js';

export interface ConvPairsContext {
  /** Shapes of named values (the recording's values and externals, and reshapes of them). */
  shapes: ReadonlyMap<string, readonly number[]>;
  /** Names of the graph's outputs. */
  outputs: readonly string[];
  /** Told of each new node and the node it stands for (profiles credit the same call). */
  derived?(node: OnnxNode, from: OnnxNode): void;
}

/** The nodes with each fusable pair of added NCHWc Convs as one Conv with Sum. */
export function fuseConvPairs(nodes: readonly OnnxNode[], ctx: ConvPairsContext): OnnxNode[] {
  if (process.env['ADAHESSIAN_CONV_PAIRS'] === '0') return [...nodes];
  const { producer, position, soleReader } = indexNodes(nodes, ctx.outputs);

  /** The NCHWc Conv and its NHWC ReorderOutput that write `name` for one reader, or null. */
  const convWriting = (name: string) => {
    const reorder = producer.get(name);
    if (
      reorder?.opType !== 'ReorderOutput' ||
      reorder.domain !== NCHWC_DOMAIN ||
      reorder.attributes?.['channels_last']?.value !== 1 ||
      !soleReader(name)
    ) {
      return null;
    }
    const conv = producer.get(reorder.inputs[0]!);
    if (
      conv?.opType !== 'Conv' ||
      conv.domain !== NCHWC_DOMAIN ||
      conv.inputs.length < 2 ||
      conv.inputs.length > 3 ||
      conv.attributes?.['activation'] != null ||
      !soleReader(reorder.inputs[0]!)
    ) {
      return null;
    }
    return { conv, reorder, channels: reorder.attributes?.['channels']?.value };
  };

  const replaced = new Map<OnnxNode, OnnxNode>();
  const removed = new Set<OnnxNode>();
  for (const add of nodes) {
    if (add.opType !== 'Add' || add.domain != null || add.inputs.length !== 2) continue;
    const [p, q] = add.inputs as [string, string];
    if (p === q) continue;
    const shape = ctx.shapes.get(add.outputs[0]!)?.join(',');
    if (shape == null || ctx.shapes.get(p)?.join(',') !== shape) continue;
    if (ctx.shapes.get(q)?.join(',') !== shape) continue;
    const [first, second] = [convWriting(p), convWriting(q)];
    if (first == null || second == null || typeof first.channels !== 'number') continue;
    if (first.channels !== second.channels) continue;
    if ([first.conv, second.conv].some((n) => replaced.has(n) || removed.has(n))) continue;
    // The later Conv accumulates onto the earlier one's output, which exists by then.
    const [earlier, later] =
      position.get(first.conv)! < position.get(second.conv)! ? [first, second] : [second, first];
    const [x, filter, bias = ''] = later.conv.inputs as [string, string, string?];
    const withSum: OnnxNode = {
      ...later.conv,
      inputs: [x, filter, bias, earlier.conv.outputs[0]!],
    };
    const written: OnnxNode = { ...later.reorder, outputs: [add.outputs[0]!] };
    ctx.derived?.(withSum, later.conv);
    ctx.derived?.(written, later.reorder);
    replaced.set(later.conv, withSum).set(later.reorder, written);
    removed.add(earlier.reorder).add(add);
  }
  return nodes.flatMap((n) => (removed.has(n) ? [] : [replaced.get(n) ?? n]));
}
