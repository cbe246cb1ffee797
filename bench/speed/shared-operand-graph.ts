/**
 * Whole step graphs with their products that share an operand stacked: an experiment, not a
 * pass of build.ts (none was kept: docs/PERFORMANCE.md, eleventh session, engineer B, second
 * task). The step (AdaHessian's, or --first-order) of the small CNN, ResNet-20 or the char
 * transformer is recorded and built as step-graph.ts builds it; then every group of MatMuls
 * translated from BatchMatMul / _FusedMatMul that read the same operand (value numbering, as
 * ONNX Runtime's CSE would merge) and none of which depends on another is stacked, one group
 * at a time: shared A -> A [B_1 | ... | B_n] sliced by columns, shared B -> [A_1; ...; A_n] B
 * sliced by rows (operands that are transposes concatenated before one transpose). Both graphs
 * run alternately in one process (process CPU medians); their outputs compared bit for bit.
 * --only AT keeps the groups of one transposed left operand (x^T dh, x^T hBar, ...), the one form
 * that measured faster alone (bench/speed/shared-operand-products.ts).
 *
 *   npx tsx bench/speed/shared-operand-graph.ts --model small-cnn --batch 64 --runs 30 [--threads 2]
 *   npx tsx bench/speed/shared-operand-graph.ts --model transformer --runs 10 [--swap] [--first-order]
 *   ... [--only A|AT|B|BT] (T: the shared operand is a transpose)
 */
import * as tf from '@tensorflow/tfjs';
import {
  buildCharTransformer,
  buildResNet20,
  buildSmallCnn,
  softmaxCrossEntropy,
  useBackend,
} from '../../src/index.js';
import { enableNativeKernels } from '../../src/native/index.js';
import type { OnnxNode } from '../../src/native/onnx-model.js';
import { record, type Recording } from '../../src/native/step-graph/capture.js';
import { buildStepGraph, type BuiltGraph } from '../../src/native/step-graph/build.js';
import { hutchinsonDiagonal, drawProbes } from '../../src/optimizers/hutchinson.js';
import { RademacherGenerator } from '../../src/optimizers/rademacher.js';
import { asGraphInputs, openBuiltGraph } from '../../test/native/step-graph/helpers.js';
import { arg } from './args.js';

tf.env().set('IS_TEST', false);
const modelName = arg('model', 'transformer');
const resnet = modelName === 'resnet20';
const cnn = modelName === 'small-cnn' || resnet;
const batch = Number(arg('batch', '64'));
const runs = Number(arg('runs', '10'));
const threads = Number(arg('threads', '1'));
const only = arg('only', '');
const firstOrder = process.argv.includes('--first-order');
const swap = process.argv.includes('--swap');

await useBackend('cpu');
enableNativeKernels({ threads, stepGraphs: false });
const model = resnet
  ? buildResNet20({ inputShape: [28, 28, 1], seed: 1 })
  : cnn
    ? buildSmallCnn({ seed: 1 })
    : buildCharTransformer({ vocabSize: 96, contextLength: 64, dModel: 64, seed: 1 });
const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
const x = cnn
  ? tf.randomUniform([batch, 28, 28, 1], 0, 1, 'float32', 1)
  : tf.randomUniform([batch, 64], 0, 96, 'int32', 1);
const classes = cnn ? 10 : 96;
const y = tf.tidy(() =>
  tf.oneHot(tf.randomUniform(cnn ? [batch] : [batch, 64], 0, classes, 'int32', 2), classes),
);
const loss = () =>
  softmaxCrossEntropy(y, model.apply(x, { training: resnet }) as tf.Tensor) as tf.Scalar;
const probes = drawProbes(new RademacherGenerator(1), vars, 1);
const { result, recording, refOf } = record(() => {
  if (firstOrder) {
    const { value, grads } = tf.variableGrads(loss, vars);
    return [value, ...vars.map((v) => grads[v.name]!)];
  }
  const est = hutchinsonDiagonal(loss, vars, { probes, checkFinite: false });
  return [est.loss, ...est.grads, ...est.diagonal];
});
const outputs = result.map((t) => ({ ref: refOf(t)!, shape: [...t.shape] }));
asGraphInputs(recording, [...vars, ...probes.flat()]);
const built = buildStepGraph(recording, outputs, { threads });

/** Each MatMul's operand shapes, from the TF.js call it translates (BatchMatMul, _FusedMatMul). */
function operandShapes(b: BuiltGraph, rec: Recording): Map<OnnxNode, number[][]> {
  const shapes = new Map<OnnxNode, number[][]>();
  b.graph.nodes.forEach((n, i) => {
    const call = rec.calls[b.nodeCalls[i]!];
    if (n.opType !== 'MatMul' || n.domain != null || call == null) return;
    if (call.kernelName !== 'BatchMatMul' && call.kernelName !== '_FusedMatMul') return;
    const side = (k: number, flag: string) => {
      const s = [...call.inputs[k]!.shape];
      if (call.attrs[flag] === true) s.push(...s.splice(s.length - 2, 2).reverse());
      return s;
    };
    shapes.set(n, [side(0, 'transposeA'), side(1, 'transposeB')]);
  });
  return shapes;
}

const swapPerm = (node: OnnxNode | undefined, rank: number) => {
  const perm = node?.attributes?.['perm']?.value as number[] | undefined;
  return (
    node?.opType === 'Transpose' &&
    perm?.length === rank &&
    perm.every((p, i) => p === (i === rank - 2 ? rank - 1 : i === rank - 1 ? rank - 2 : i))
  );
};

let fresh = 0;
/** One group stacked, or null when no group is left. */
function stackOne(nodes: OnnxNode[], shapes: Map<OnnxNode, number[][]>): OnnxNode[] | null {
  const producer = new Map<string, OnnxNode>();
  const index = new Map<OnnxNode, number>();
  nodes.forEach((n, i) => {
    index.set(n, i);
    n.outputs.forEach((o) => producer.set(o, n));
  });
  const words = (nodes.length + 31) >> 5;
  const anc = nodes.map(() => new Uint32Array(words));
  nodes.forEach((n, i) => {
    for (const input of n.inputs) {
      const p = producer.get(input);
      if (p == null) continue;
      const j = index.get(p)!;
      anc[i]![j >> 5]! |= 1 << (j & 31);
      for (let w = 0; w < words; w++) anc[i]![w]! |= anc[j]![w]!;
    }
  });
  const dependsOn = (i: number, j: number) => (anc[i]![j >> 5]! >>> (j & 31)) & 1;
  const canonical = new Map<string, string>();
  const canon = (name: string) => canonical.get(name) ?? name;
  const seen = new Map<string, readonly string[]>();
  for (const n of nodes) {
    const key = `${n.domain ?? ''}|${n.opType}|${JSON.stringify(n.attributes ?? {})}|${n.inputs.map(canon).join(',')}`;
    const first = seen.get(key);
    if (first == null) seen.set(key, n.outputs);
    else n.outputs.forEach((o, k) => canonical.set(o, canon(first[k]!)));
  }
  const groups = new Map<string, OnnxNode[]>();
  for (const n of nodes) {
    const s = shapes.get(n);
    if (s == null) continue;
    const [a, b] = s as [number[], number[]];
    const batchDims = a.slice(0, -2).join(',');
    if (batchDims !== b.slice(0, -2).join(',')) continue;
    for (const side of [0, 1]) {
      const t = swapPerm(producer.get(n.inputs[side]!), a.length) ? 'T' : '';
      const key = `${side === 0 ? 'A' : 'B'}${t}|${canon(n.inputs[side]!)}|${batchDims}`;
      groups.set(key, [...(groups.get(key) ?? []), n]);
    }
  }
  for (const [key, members] of groups) {
    if (members.length < 2 || (only !== '' && key.split('|')[0] !== only)) continue;
    const chosen: OnnxNode[] = [];
    for (const m of members)
      if (
        chosen.every((c) => !dependsOn(index.get(m)!, index.get(c)!)) &&
        chosen.every((c) => !dependsOn(index.get(c)!, index.get(m)!))
      )
        chosen.push(m);
    if (chosen.length < 2) continue;
    const sharedA = key.startsWith('A');
    const other = sharedA ? 1 : 0;
    const rank = shapes.get(chosen[0]!)![0]!.length;
    const stackAxis = sharedA ? rank - 1 : rank - 2;
    const sizes = chosen.map((m) => shapes.get(m)![other]![stackAxis]!);
    const operands = chosen.map((m) => m.inputs[other]!);
    const id = fresh++;
    const extra: OnnxNode[] = [];
    const allTransposed = operands.every((o) => swapPerm(producer.get(o), rank));
    const stacked = `so${id}_operand`;
    if (allTransposed) {
      const inner = `so${id}_inner`;
      extra.push(
        {
          opType: 'Concat',
          inputs: operands.map((o) => producer.get(o)!.inputs[0]!),
          outputs: [inner],
          attributes: { axis: { kind: 'int', value: sharedA ? rank - 2 : rank - 1 } },
        },
        { ...producer.get(operands[0]!)!, inputs: [inner], outputs: [stacked] },
      );
    } else {
      extra.push({
        opType: 'Concat',
        inputs: operands,
        outputs: [stacked],
        attributes: { axis: { kind: 'int', value: stackAxis } },
      });
    }
    const product = `so${id}_product`;
    const shared = chosen[0]!.inputs[sharedA ? 0 : 1]!;
    extra.push({
      opType: 'MatMul',
      inputs: sharedA ? [shared, stacked] : [stacked, shared],
      outputs: [product],
    });
    let offset = 0;
    chosen.forEach((m, k) => {
      extra.push({
        opType: 'Slice',
        inputs: [product, int64(offset), int64(offset + sizes[k]!), int64(stackAxis)],
        outputs: m.outputs,
      });
      offset += sizes[k]!;
    });
    for (const n of extra.filter((e) => e.opType === 'MatMul')) shapes.delete(n);
    const last = chosen.reduce((p, c) => (index.get(c)! > index.get(p)! ? c : p));
    const gone = new Set(chosen);
    const out: OnnxNode[] = [];
    for (const n of nodes) {
      if (n === last) out.push(...extra);
      if (!gone.has(n)) out.push(n);
    }
    stackedGroups.push(`${key.split('|')[0]} x${chosen.length} ${sizes.join('+')}`);
    return topologicalOrder(out);
  }
  return null;
}
const stackedGroups: string[] = [];
const initializers = [...(built.graph.tensorInitializers ?? [])];
function int64(v: number): string {
  const name = `so_i${v}`;
  if (!initializers.some((i) => i.name === name))
    initializers.push({
      name,
      dims: [1],
      dtype: 'int64',
      raw: new Uint8Array(BigInt64Array.from([BigInt(v)]).buffer),
    });
  return name;
}
function topologicalOrder(nodes: OnnxNode[]): OnnxNode[] {
  const produced = new Set(nodes.flatMap((n) => n.outputs));
  const ready = new Set<string>();
  const waiting = new Map<string, OnnxNode[]>();
  const out: OnnxNode[] = [];
  const place = (n: OnnxNode) => {
    const need = n.inputs.find((i) => i !== '' && produced.has(i) && !ready.has(i));
    if (need != null) {
      waiting.set(need, [...(waiting.get(need) ?? []), n]);
      return;
    }
    out.push(n);
    for (const o of n.outputs) {
      ready.add(o);
      const w = waiting.get(o) ?? [];
      waiting.delete(o);
      w.forEach(place);
    }
  };
  nodes.forEach(place);
  if (out.length !== nodes.length) throw new Error('stacking made a cycle');
  return out;
}

const shapes = operandShapes(built, recording);
let nodes = [...built.graph.nodes];
for (;;) {
  const next = stackOne(nodes, shapes);
  if (next == null) break;
  nodes = next;
}
const stackedBuilt: BuiltGraph = {
  ...built,
  graph: { ...built.graph, nodes, tensorInitializers: initializers },
  nodeCount: nodes.length,
};
console.log(
  `${modelName} ${firstOrder ? 'first-order' : 'AdaHessian'} batch ${batch}, ${threads} thread(s): ${built.nodeCount} -> ${nodes.length} nodes; stacked: ${stackedGroups.join(', ') || 'none'}`,
);
const sides = swap
  ? [
      openBuiltGraph(stackedBuilt, recording, { threads }),
      openBuiltGraph(built, recording, { threads }),
    ]
  : [
      openBuiltGraph(built, recording, { threads }),
      openBuiltGraph(stackedBuilt, recording, { threads }),
    ];
const cpu = [[], []] as number[][];
const wall = [[], []] as number[][];
for (let r = 0; r < runs + 2; r++)
  sides.forEach((s, k) => {
    const t = performance.now();
    const c = process.cpuUsage();
    s.run();
    const used = process.cpuUsage(c);
    if (r >= 2) {
      cpu[k]!.push((used.user + used.system) / 1000);
      wall[k]!.push(performance.now() - t);
    }
  });
const outs = sides.map((s) => s.run().map((o) => o.slice()));
const same = outs[0]!.every((o, j) => o.every((v, i) => Object.is(v, outs[1]![j]![i])));
const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;
const [ca, cb] = cpu.map(median) as [number, number];
const [wa, wb] = wall.map(median) as [number, number];
console.log(
  `A ${swap ? 'stacked' : 'as built'}, B ${swap ? 'as built' : 'stacked'}: CPU ${ca.toFixed(1)} / ${cb.toFixed(1)} ms, B/A ${(cb / ca).toFixed(3)}; wall B/A ${(wb / wa).toFixed(3)}; outputs ${same ? 'the same bits' : 'DIFFERENT'}`,
);
sides.forEach((s) => s.dispose());
