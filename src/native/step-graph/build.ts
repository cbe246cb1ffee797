/**
 * Turns a recording (capture.ts) into one ONNX graph: the recorded values become named
 * intermediates, the tensors made in JS during the step become initializers, and the named
 * inputs (the batch, the variables, the probes) become graph inputs. Calls that none of the
 * returned tensors depends on are left out. The nodes then go through simplify.ts's rewrites
 * (same values bit for bit, fewer passes over memory).
 */
import type { OnnxGraph, OnnxNode, OnnxTensorInitializer, OnnxValueInfo } from '../onnx-model.js';
import { StepGraphRefusal, type Recording, type StepDtype, type ValueRef } from './capture.js';
import { fuseConvBiases } from './conv-bias.js';
import { fuseConvPairs } from './conv-pairs.js';
import { mergeNchwcDuplicates } from './nchwc-duplicates.js';
import { stackFilterGradients } from './filter-grad-pairs.js';
import { foldPoolReluMasks } from './pool-relu-masks.js';
import { simplifyGraph, type SimplifyPass } from './simplify.js';
import { keepsCommonSubexpressionElimination } from './cse.js';
import { rewriteLayerNormGradients } from './layer-norm-grad.js';
import { rewriteGeluGradients } from './gelu-grad.js';
import { rawBytes, TRANSLATIONS, type TranslationContext } from './translate.js';

/** A returned tensor: which value it is, in the shape the caller gets. */
export interface GraphOutput {
  ref: ValueRef;
  shape: number[];
}

export interface BuiltGraph {
  graph: OnnxGraph;
  /** Graph input k is external `inputExternals[k]`. */
  inputExternals: number[];
  nodeCount: number;
  keptCalls: number;
  /** Per node of `graph`, the recorded call it translates (-1: the outputs' identities); profiles. */
  nodeCalls: number[];
}

export interface BuildOptions {
  /** Rewrites of simplify.ts to leave out (default none; only to measure what they buy). */
  skipRewrites?: readonly SimplifyPass[];
  /**
   * ONNX Runtime intra-op threads the graph will run with (default 1): above one, kernels whose
   * ONNX Runtime implementation races get another translation (translate.ts, TranslationContext
   * `threads`).
   */
  threads?: number;
  /**
   * The layer norms' gradients written by hand (layer-norm-grad.ts; first-order graphs only:
   * it changes the rounding). Default off.
   */
  layerNormGradients?: boolean;
  /** GELU's gradients written by hand (gelu-grad.ts; first-order graphs only). Default off. */
  geluGradients?: boolean;
  /**
   * Products written straight into their outputs where the Reshape after them would change
   * nothing (translate.ts): ONNX Runtime can then fuse a bias Add (Gemm) or a scale (FusedMatMul
   * alpha) into them. First-order graphs only: the same bits there, but in the AdaHessian graph
   * the fusions change the rounding (lr-text-graph-hash.ts: 84bf7d51 -> 169c3ab6). Default off.
   */
  elideMatMulReshapes?: boolean;
}

export function buildStepGraph(
  recording: Recording,
  outputs: GraphOutput[],
  options: BuildOptions = {},
): BuiltGraph {
  const layerNorms = options.layerNormGradients
    ? rewriteLayerNormGradients(recording, outputs)
    : null;
  const afterLayerNorms = layerNorms?.recording ?? recording;
  const gelus = options.geluGradients ? rewriteGeluGradients(afterLayerNorms, outputs) : null;
  const { calls, values, externals } = gelus?.recording ?? afterLayerNorms;
  /** Per call translated, the given recording's call it stands for. */
  const originOf = (c: number) => {
    const beforeGelus = gelus == null ? c : gelus.origin[c]!;
    return layerNorms == null ? beforeGelus : layerNorms.origin[beforeGelus]!;
  };
  const nodes: OnnxNode[] = [];
  const tensorInitializers: OnnxTensorInitializer[] = [];
  const constants = new Map<string, string>();
  const reshaped = new Map<string, string>();
  let temps = 0;

  const neededValues = new Set<number>();
  const neededExternals = new Set<number>();
  const need = (ref: ValueRef) =>
    (ref.kind === 'value' ? neededValues : neededExternals).add(ref.index);
  outputs.forEach((o) => need(o.ref));
  const kept: boolean[] = new Array(calls.length).fill(false);
  for (let c = calls.length - 1; c >= 0; c--) {
    const call = calls[c]!;
    if (!call.outputs.some((v) => neededValues.has(v))) continue;
    kept[c] = true;
    for (const input of call.inputs) need(input.ref);
  }

  /** Identities (TF.js clones a tensor it saves for the gradient) are names, not nodes. */
  const aliasOf = new Map<number, string>();
  const baseName = (ref: ValueRef) =>
    ref.kind === 'value' ? (aliasOf.get(ref.index) ?? `v${ref.index}`) : `e${ref.index}`;
  const shapeOf = (ref: ValueRef) =>
    ref.kind === 'value' ? values[ref.index]!.shape : externals[ref.index]!.shape;
  const constant = (key: string, make: () => OnnxTensorInitializer): string => {
    let name = constants.get(key);
    if (name == null) {
      const init = make();
      tensorInitializers.push(init);
      name = init.name;
      constants.set(key, name);
    }
    return name;
  };
  const int64s = (vals: readonly number[]) =>
    constant(`i64:${vals.join(',')}`, () => ({
      name: `c${constants.size}`,
      dims: [vals.length],
      dtype: 'int64',
      raw: rawBytes(BigInt64Array.from(vals, (v) => BigInt(v))),
    }));
  const typed = (vals: readonly number[], dtype: StepDtype) =>
    dtype === 'float32'
      ? Float32Array.from(vals)
      : dtype === 'int32'
        ? Int32Array.from(vals)
        : Uint8Array.from(vals, (v) => (v ? 1 : 0));
  const tensorConstant = (vals: readonly number[], dtype: StepDtype, dims: number[]) =>
    constant(`${dtype}:${dims.join(',')}:${vals.join(',')}`, () => ({
      name: `c${constants.size}`,
      dims,
      dtype,
      raw: rawBytes(typed(vals, dtype)),
    }));
  /** `ref` in `shape` (the same elements, maybe another shape: a reshape shares data). */
  const nameIn = (ref: ValueRef, shape: number[]): string => {
    const base = baseName(ref);
    if (shapeOf(ref).join(',') === shape.join(',')) return base;
    const key = `${base}|${shape.join(',')}`;
    let name = reshaped.get(key);
    if (name == null) {
      name = `${base}_r${reshaped.size}`;
      nodes.push({ opType: 'Reshape', inputs: [base, int64s(shape)], outputs: [name] });
      reshaped.set(key, name);
    }
    return name;
  };

  const nodeCall = new Map<OnnxNode, number>();
  let translated = 0;
  calls.forEach((call, c) => {
    for (; translated < nodes.length; translated++) nodeCall.set(nodes[translated]!, c - 1);
    if (!kept[c]) return;
    const rule = TRANSLATIONS[call.kernelName];
    if (rule == null) {
      throw new StepGraphRefusal(`no ONNX translation for kernel ${call.kernelName}`);
    }
    const byName = new Map(call.inputs.map((i) => [i.name, i]));
    const inputOf = (name: string) => {
      const input = byName.get(name);
      if (input == null) throw new StepGraphRefusal(`${call.kernelName}: no input '${name}'`);
      return input;
    };
    const ctx: TranslationContext = {
      call,
      threads: options.threads ?? 1,
      elideMatMulReshapes: options.elideMatMulReshapes === true,
      input: (name) => nameIn(inputOf(name).ref, inputOf(name).shape),
      hasInput: (name) => byName.has(name),
      inputAs: (name, shape) => nameIn(inputOf(name).ref, [...shape]),
      constantValues: (name) => {
        const { ref } = inputOf(name);
        const ext = ref.kind === 'external' ? externals[ref.index]! : null;
        return ext?.values != null && ext.values.length <= 16 ? Array.from(ext.values) : null;
      },
      inputShape: (name) => inputOf(name).shape,
      inputDtype: (name) => inputOf(name).dtype,
      inputNames: () => call.inputs.map((i) => i.name),
      output: (i = 0) => `v${call.outputs[i]!}`,
      outputShape: (i = 0) => values[call.outputs[i]!]!.shape,
      outputDtype: (i = 0) => values[call.outputs[i]!]!.dtype,
      temp: () => `t${temps++}`,
      node: (opType, inputs, outs, attributes, domain) =>
        nodes.push({
          opType,
          inputs,
          outputs: outs,
          ...(attributes ? { attributes } : {}),
          ...(domain ? { domain } : {}),
        }),
      int64s,
      scalar: (value, dtype) => tensorConstant([value], dtype, []),
      vector: (vals, dtype) => tensorConstant(vals, dtype, [vals.length]),
    };
    if (call.outputs.length !== 1) {
      throw new StepGraphRefusal(`${call.kernelName} has ${call.outputs.length} outputs`);
    }
    const first = call.inputs[0];
    const sameDtype = first != null && call.attrs['dtype'] === first.dtype;
    if ((call.kernelName === 'Identity' || (call.kernelName === 'Cast' && sameDtype)) && first) {
      aliasOf.set(call.outputs[0]!, nameIn(first.ref, first.shape));
      return;
    }
    rule(ctx);
  });

  for (; translated < nodes.length; translated++)
    nodeCall.set(nodes[translated]!, calls.length - 1);
  const inputs: OnnxValueInfo[] = [];
  const inputExternals: number[] = [];
  for (const e of [...neededExternals].sort((a, b) => a - b)) {
    const ext = externals[e]!;
    if (ext.values != null) {
      tensorInitializers.push({
        name: `e${e}`,
        dims: ext.shape,
        dtype: ext.dtype,
        raw: rawBytes(typed(Array.from(ext.values!), ext.dtype)),
      });
    } else {
      inputs.push({ name: `e${e}`, shape: ext.shape, dtype: ext.dtype });
      inputExternals.push(e);
    }
  }
  const graphOutputs: OnnxValueInfo[] = outputs.map((o, k) => {
    const dtype =
      o.ref.kind === 'value' ? values[o.ref.index]!.dtype : externals[o.ref.index]!.dtype;
    nodes.push({ opType: 'Identity', inputs: [nameIn(o.ref, o.shape)], outputs: [`out${k}`] });
    return { name: `out${k}`, shape: o.shape, dtype };
  });
  const shapes = new Map<string, number[]>();
  values.forEach((v, i) => shapes.set(`v${i}`, v.shape));
  externals.forEach((e, i) => shapes.set(`e${i}`, e.shape));
  for (const [key, name] of reshaped)
    shapes.set(name, key.split('|')[1]!.split(',').filter(Boolean).map(Number));
  // What every rewrite below is told: the graph's outputs (they must stay written), and how a
  // new node inherits the recorded call its profile time is credited to.
  const outputNames = graphOutputs.map((o) => o.name);
  const derived = (node: OnnxNode, from: OnnxNode) => nodeCall.set(node, nodeCall.get(from) ?? -1);
  const simplified = simplifyGraph(nodes, {
    shapes,
    initializers: tensorInitializers,
    outputs: outputNames,
    int64s,
    derived,
    skip: options.skipRewrites ?? [],
  });
  // Filter gradients sharing their taps (the sweep's and the gradient's) as one product per tap.
  const stacked = stackFilterGradients(simplified, {
    outputs: outputNames,
    int64s,
    derived,
  });
  // ONNX Runtime's own common-subexpression elimination skips the NCHWc ops.
  const merged = mergeNchwcDuplicates(stacked, {
    outputs: outputNames,
    enabled: keepsCommonSubexpressionElimination({ values }),
  });
  // Before the biases: a channel bias added to a pair's sum then goes into its Conv too.
  const paired = fuseConvPairs(merged, {
    shapes,
    outputs: outputNames,
    derived,
  });
  // After simplify.ts: the sweep's bias tangents are broadcasts there, read unbroadcast here.
  const biased = fuseConvBiases(paired, {
    shapes,
    outputs: outputNames,
    int64s,
    derived,
  });
  // Relu masks multiplied at max pooling's winners (reads max-pool-indices.ts's gathers).
  const finalNodes = foldPoolReluMasks(biased, {
    shapes,
    initializers: tensorInitializers,
    outputs: outputNames,
    derived,
  });
  const used = new Set(finalNodes.flatMap((n) => n.inputs));
  return {
    graph: {
      nodes: finalNodes,
      inputs,
      outputs: graphOutputs,
      // Those no node reads any more (a dropped Tile's repeats), which ONNX Runtime warns of.
      tensorInitializers: tensorInitializers.filter((i) => used.has(i.name)),
    },
    inputExternals,
    nodeCount: finalNodes.length,
    keptCalls: kept.filter(Boolean).length,
    nodeCalls: finalNodes.map((n) => {
      const c = nodeCall.get(n) ?? -1;
      return c < 0 ? c : originOf(c);
    }),
  };
}
