/**
 * Turns a recording (capture.ts) into one ONNX graph: the recorded values become named
 * intermediates, the tensors made in JS during the step become initializers, and the named
 * inputs (the batch, the variables, the probes) become graph inputs. Calls that none of the
 * returned tensors depends on are left out.
 */
import type { OnnxGraph, OnnxNode, OnnxTensorInitializer, OnnxValueInfo } from '../onnx-model.js';
import { StepGraphRefusal, type Recording, type StepDtype, type ValueRef } from './capture.js';
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
}

export function buildStepGraph(recording: Recording, outputs: GraphOutput[]): BuiltGraph {
  const { calls, values, externals } = recording;
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

  calls.forEach((call, c) => {
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
      node: (opType, inputs, outs, attributes) =>
        nodes.push({ opType, inputs, outputs: outs, ...(attributes ? { attributes } : {}) }),
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
  const finalNodes = broadcastInsteadOfTile(nodes, shapes, tensorInitializers);
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
  };
}

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
]);

/** numpy's broadcast of shapes, or null when they do not broadcast. */
function broadcastShape(shapes: readonly (readonly number[])[]): number[] | null {
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
]);

/**
 * TF.js's gradients of sums and means broadcast with Tile (a full-size copy); where every
 * reader of a Tile's output is an element-wise op whose other operands already have the full
 * shape, the untiled tensor is read instead (numpy broadcasting gives the same values) and the
 * Tile goes.
 */
function broadcastInsteadOfTile(
  nodes: OnnxNode[],
  shapes: Map<string, number[]>,
  initializers: OnnxTensorInitializer[],
): OnnxNode[] {
  const repeats = new Map(initializers.map((i) => [i.name, i]));
  // Shapes of the rules' intermediates, where element-wise ops make them easy to infer.
  for (const node of nodes) {
    const out = node.outputs[0]!;
    if (shapes.has(out)) continue;
    const ins = node.inputs.map(
      (n) => shapes.get(n) ?? (repeats.get(n)?.dims as number[] | undefined),
    );
    if (ins.some((x) => x == null)) continue;
    if (BROADCASTING.has(node.opType)) shapes.set(out, broadcastShape(ins as number[][])!);
    else if (UNARY.has(node.opType)) shapes.set(out, ins[0]!);
  }
  const readers = new Map<string, OnnxNode[]>();
  for (const node of nodes) {
    for (const input of node.inputs) readers.set(input, [...(readers.get(input) ?? []), node]);
  }
  const dropped = new Set<OnnxNode>();
  for (const node of nodes) {
    if (node.opType !== 'Tile' && node.opType !== 'Expand') continue;
    const [x, repsName] = node.inputs as [string, string];
    const out = node.outputs[0]!;
    const xShape = shapes.get(x) ?? (repeats.get(x)?.dims as number[] | undefined);
    const outShape = shapes.get(out);
    const reps = repeats.get(repsName);
    if (xShape == null || outShape == null || reps == null) continue;
    if (node.opType === 'Tile') {
      const r = Array.from(
        new BigInt64Array(reps.raw.buffer, reps.raw.byteOffset, reps.raw.byteLength / 8),
        Number,
      );
      const broadcast = r.every((k, a) => k === 1 || xShape[a] === 1);
      if (xShape.length !== outShape.length || !broadcast) continue;
    }
    const users = readers.get(out) ?? [];
    // Each reader's result must keep its shape when it reads x instead.
    const sameResult = (u: OnnxNode) => {
      const withOut = u.inputs.map((n) => shapes.get(n) ?? repeats.get(n)?.dims);
      const withX = u.inputs.map((n) =>
        n === out ? xShape : (shapes.get(n) ?? repeats.get(n)?.dims),
      );
      if (withOut.some((x) => x == null)) return false;
      const a = broadcastShape(withOut as number[][]);
      const b = broadcastShape(withX as number[][]);
      return a != null && b != null && a.join(',') === b.join(',');
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
