/**
 * A channel bias added to an NCHWc convolution's output becomes the Conv's own bias input.
 *
 * Why: tf.layers' conv2d records Conv2D and then Add(conv, bias) (the fused kernel is not used
 * under a gradient tape), and the Hessian-vector sweep adds the bias's tangent to the tangent
 * of the first convolution the same way. ONNX Runtime broadcasts a [C] operand over an NHWC
 * tensor in runs of C values, so each such Add cost about twice an element-wise pass of the
 * same size (the small CNN at batch 64: 1.3 ms for the first conv's forward Add, 0.8 ms for
 * the sweep's, of ~45 ms node time). MLAS's NCHWc convolution adds its bias while it writes
 * the output (after the last input-channel block's products, one float32 addition: the same
 * value as the separate Add; step-graph-profile.ts --ab convbias=1 prints the largest
 * difference), so the pass over memory goes away.
 *
 * The pattern, on the built nodes (build.ts, after simplify.ts): Add(ReorderOutput(Conv(x, w)),
 * b), maybe through a Reshape to the same shape, where the Conv is translate-conv.ts's com.microsoft.nchwc Conv without a bias, the
 * ReorderOutput writes NHWC (channels_last) for the Add alone, b's shape is [C] or [1, ..., 1, C]
 * for the Conv's C output channels, and the Add's output has the ReorderOutput's shape. The
 * Conv and ReorderOutput move to the Add's place (b may be computed after the Conv), the Conv
 * takes b (reshaped to [C]) and the ReorderOutput writes the Add's output. ADAHESSIAN_CONV_BIAS=0
 * leaves the graph as it is (A/Bs).
 */
import { NCHWC_DOMAIN, type OnnxNode } from '../onnx-model.js';
import { indexNodes } from './node-index.js';

export interface ConvBiasContext {
  /** Shapes of named values (the recording's values and externals, and reshapes of them). */
  shapes: ReadonlyMap<string, readonly number[]>;
  /** Names of the graph's outputs. */
  outputs: readonly string[];
  /** A constant int64 1-D tensor's name (the bias's Reshape). */
  int64s(values: readonly number[]): string;
  /** Told of each new node and the node it stands for (profiles credit the same call). */
  derived?(node: OnnxNode, from: OnnxNode): void;
}

/** The nodes with every fusable bias Add folded into its Conv (the others untouched). */
export function fuseConvBiases(nodes: readonly OnnxNode[], ctx: ConvBiasContext): OnnxNode[] {
  if (process.env['ADAHESSIAN_CONV_BIAS'] === '0') return [...nodes];
  const { producer, soleReader } = indexNodes(nodes, ctx.outputs);

  /** Per fused Add: the nodes that replace it; the Conv and ReorderOutput it took, removed. */
  const replacing = new Map<OnnxNode, OnnxNode[]>();
  const removed = new Set<OnnxNode>();
  /** A bias already reshaped to [C] (its Reshape sits before the first Conv that took it). */
  const reshapedBias = new Map<string, string>();
  for (const add of nodes) {
    if (add.opType !== 'Add' || add.domain != null || add.inputs.length !== 2) continue;
    for (const side of [0, 1]) {
      const [x, b] = [add.inputs[side]!, add.inputs[1 - side]!];
      // TF.js's gradients reshape to the same shape now and then: a name, not a pass.
      const sameShapeReshape = producer.get(x);
      const through =
        sameShapeReshape?.opType === 'Reshape' &&
        soleReader(x) &&
        ctx.shapes.get(sameShapeReshape.inputs[0]!)?.join(',') === ctx.shapes.get(x)?.join(',')
          ? sameShapeReshape
          : null;
      const convOut = through?.inputs[0] ?? x;
      const reorder = producer.get(convOut);
      if (
        reorder == null ||
        removed.has(reorder) ||
        reorder.opType !== 'ReorderOutput' ||
        reorder.domain !== NCHWC_DOMAIN ||
        reorder.attributes?.['channels_last']?.value !== 1 ||
        !soleReader(convOut)
      ) {
        continue;
      }
      const conv = producer.get(reorder.inputs[0]!);
      if (
        conv == null ||
        conv.opType !== 'Conv' ||
        conv.domain !== NCHWC_DOMAIN ||
        // No bias yet; conv-pairs.ts's Conv with Sum has an empty bias input.
        !(conv.inputs.length === 2 || (conv.inputs.length === 4 && conv.inputs[2] === '')) ||
        !soleReader(reorder.inputs[0]!)
      ) {
        continue;
      }
      const channels = reorder.attributes?.['channels']?.value;
      const xShape = ctx.shapes.get(x);
      const bShape = ctx.shapes.get(b);
      const outShape = ctx.shapes.get(add.outputs[0]!);
      if (typeof channels !== 'number' || xShape == null || bShape == null || outShape == null) {
        continue;
      }
      const isChannelVector =
        bShape.length >= 1 &&
        bShape.at(-1) === channels &&
        bShape.slice(0, -1).every((d) => d === 1) &&
        xShape.at(-1) === channels;
      if (!isChannelVector || outShape.join(',') !== xShape.join(',')) continue;
      const nodesHere: OnnxNode[] = [];
      let bias = reshapedBias.get(b) ?? b;
      if (bShape.length !== 1 && !reshapedBias.has(b)) {
        bias = `${b}_bias${channels}`;
        reshapedBias.set(b, bias);
        const reshape: OnnxNode = {
          opType: 'Reshape',
          inputs: [b, ctx.int64s([channels])],
          outputs: [bias],
        };
        ctx.derived?.(reshape, add);
        nodesHere.push(reshape);
      }
      const [input, filter, , sum] = conv.inputs;
      const biased: OnnxNode = {
        ...conv,
        inputs: [input!, filter!, bias, ...(sum != null ? [sum] : [])],
      };
      const written: OnnxNode = { ...reorder, outputs: [add.outputs[0]!] };
      ctx.derived?.(biased, conv);
      ctx.derived?.(written, reorder);
      nodesHere.push(biased, written);
      replacing.set(add, nodesHere);
      removed.add(conv).add(reorder);
      if (through != null) removed.add(through);
      break;
    }
  }
  return nodes.flatMap((n) => (removed.has(n) ? [] : (replacing.get(n) ?? [n])));
}
