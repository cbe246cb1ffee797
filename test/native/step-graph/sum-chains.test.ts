/**
 * sum-chains.ts: chains of accumulating Adds as one variadic Sum, bit for bit. Pinned: which
 * chains fuse (hand-made nodes), that ONNX Runtime's Sum gives a chain's bits (also broadcasting,
 * with operands of mixed magnitudes so that another order would show), and on a small
 * transformer's AdaHessian step that the built graph has Sums and the same outputs bit for bit as
 * the graph without the rewrite. The rewrite is off by default (ADAHESSIAN_SUM_CHAINS=1).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { buildCharTransformer, softmaxCrossEntropy } from '../../../src/index.js';
import type { OnnxGraph, OnnxNode } from '../../../src/native/onnx-model.js';
import { encodeOnnxModel } from '../../../src/native/onnx-model.js';
import { loadOnnxRuntime, onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import { record } from '../../../src/native/step-graph/capture.js';
import { buildStepGraph, type BuiltGraph } from '../../../src/native/step-graph/build.js';
import { fuseSumChains } from '../../../src/native/step-graph/sum-chains.js';
import { drawProbes, hutchinsonDiagonal } from '../../../src/optimizers/hutchinson.js';
import { RademacherGenerator } from '../../../src/optimizers/rademacher.js';
import { onBackend } from '../../helpers.js';
import { runBuiltGraph } from './helpers.js';

const unavailable = onnxRuntimeUnavailableReason();
if (unavailable !== '') console.log(`# sum-chain graph tests skipped: ${unavailable}`);
const runtime = loadOnnxRuntime()!;
const Tensor = runtime?.Tensor as unknown as new (t: string, d: unknown, s: number[]) => object;
type OrtSession = {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  run(feeds: object, fetches: object, options: object): void;
  dispose(): void;
};

/** `f` with ADAHESSIAN_SUM_CHAINS set to `value` (restored after). */
function withSumChains<T>(value: string | undefined, f: () => T): T {
  const saved = process.env['ADAHESSIAN_SUM_CHAINS'];
  if (value === undefined) delete process.env['ADAHESSIAN_SUM_CHAINS'];
  else process.env['ADAHESSIAN_SUM_CHAINS'] = value;
  try {
    return f();
  } finally {
    if (saved === undefined) delete process.env['ADAHESSIAN_SUM_CHAINS'];
    else process.env['ADAHESSIAN_SUM_CHAINS'] = saved;
  }
}

const add = (x: string, y: string, out: string): OnnxNode => ({
  opType: 'Add',
  inputs: [x, y],
  outputs: [out],
});
const fuse = (nodes: OnnxNode[], outputs = ['z'], dtype = 'float32') =>
  withSumChains('1', () => fuseSumChains(nodes, { outputs, dtypeOf: () => dtype }));
const text = (nodes: OnnxNode[]) =>
  nodes.map((n) => `${n.opType}(${n.inputs.join(',')})->${n.outputs.join(',')}`).join(' ');

describe('sum-chains.ts: accumulating Add chains as one Sum', () => {
  it('fuses a chain into a Sum of its operands in the order it adds them, at its last Add', () => {
    const chain = [
      add('a', 'b', 't1'),
      { opType: 'Neg', inputs: ['q'], outputs: ['c'] },
      add('t1', 'c', 't2'),
      add('d', 't2', 'z'), // the running value on the right: d + t2 = t2 + d
    ];
    assert.equal(text(fuse(chain)), 'Neg(q)->c Sum(a,b,c,d)->z');
    // (a + b) + (c + d): only one side joins, so the Sum adds as the tree did.
    const tree = [add('a', 'b', 't1'), add('c', 'd', 't2'), add('t1', 't2', 'z')];
    assert.equal(text(fuse(tree)), 'Add(c,d)->t2 Sum(a,b,t2)->z');
    // Two chains meeting: the second one's intermediate has one reader, the first chain's Add.
    assert.equal(text(fuse([...tree, add('z', 'e', 'w')], ['w'])), 'Add(c,d)->t2 Sum(a,b,t2,e)->w');
  });

  it('leaves a chain whose intermediate is read elsewhere, returned, read twice, or not float32', () => {
    const chain = [add('a', 'b', 't1'), add('t1', 'c', 'z')];
    const cases: [string, OnnxNode[], string[], string?][] = [
      [
        'read elsewhere',
        [...chain, { opType: 'Relu', inputs: ['t1'], outputs: ['r'] }],
        ['z', 'r'],
      ],
      ['a graph output', chain, ['z', 't1']],
      ['read twice by its Add', [add('a', 'b', 't1'), add('t1', 't1', 'z')], ['z']],
      ['int32', chain, ['z'], 'int32'],
      ['a lone Add', [add('a', 'b', 'z')], ['z']],
    ];
    for (const [what, nodes, outputs, dtype] of cases) {
      assert.deepEqual(fuse(nodes, outputs, dtype), nodes, what);
    }
    // Off unless asked for.
    const off = withSumChains(undefined, () =>
      fuseSumChains(chain, { outputs: ['z'], dtypeOf: () => 'float32' }),
    );
    assert.deepEqual(off, chain);
  });

  it(
    "ONNX Runtime's Sum adds as the chain does, bit for bit, broadcasting too",
    { skip: unavailable || false },
    async () => {
      await onBackend('cpu');
      const shapes = [[3, 5, 7], [7], [3, 5, 7], [3, 1, 7], [3, 5, 7]];
      // Magnitudes 1e-3 to 1e3: the order of the additions shows in the last bits.
      const inputs = shapes.map((shape, k) =>
        tf.tidy(() =>
          tf.mul(tf.randomNormal(shape, 0, 1, 'float32', 10 + k), 10 ** (((k * 2) % 7) - 3)),
        ),
      );
      const names = inputs.map((_, k) => `x${k}`);
      const chainNodes: OnnxNode[] = names
        .slice(1)
        .map((n, k) =>
          add(k === 0 ? names[0]! : `t${k}`, n, k === names.length - 2 ? 'z' : `t${k + 1}`),
        );
      const graph = (nodes: OnnxNode[]): OnnxGraph => ({
        nodes,
        inputs: names.map((name, k) => ({ name, shape: shapes[k]!, dtype: 'float32' as const })),
        outputs: [{ name: 'z', shape: [3, 5, 7], dtype: 'float32' }],
        tensorInitializers: [],
      });
      const fused = fuse(chainNodes);
      assert.equal(text(fused), `Sum(${names.join(',')})->z`);
      const feeds = Object.fromEntries(
        names.map((n, k) => [n, new Tensor('float32', inputs[k]!.dataSync(), shapes[k]!)]),
      );
      const run = (nodes: OnnxNode[]) => {
        const bytes = encodeOnnxModel(graph(nodes));
        const session = new runtime.binding.binding.InferenceSession() as unknown as OrtSession;
        session.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
          graphOptimizationLevel: 'all',
          logSeverityLevel: 3,
        });
        const out = new Float32Array(3 * 5 * 7);
        session.run(feeds, { z: new Tensor('float32', out, [3, 5, 7]) }, {});
        session.dispose();
        return Array.from(out);
      };
      const chained = run(chainNodes);
      assert.deepEqual(run(fused), chained);
      // And the order matters here: a Sum of the operands in another order differs.
      assert.notDeepEqual(
        run([{ opType: 'Sum', inputs: [...names].reverse(), outputs: ['z'] }]),
        chained,
      );
      tf.dispose(inputs);
    },
  );

  it(
    "a small char transformer's AdaHessian step graph: Sums, and the same outputs bit for bit",
    { skip: unavailable || false },
    async () => {
      await onBackend('cpu');
      const tensorsBefore = tf.memory().numTensors;
      const model = buildCharTransformer({ vocabSize: 11, contextLength: 6, dModel: 8, seed: 3 });
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const ids = tf.randomUniform([2, 6], 0, 11, 'int32', 4);
      const y = tf.tidy(() => tf.oneHot(tf.randomUniform([2, 6], 0, 11, 'int32', 5), 11));
      const probes = drawProbes(new RademacherGenerator(6), vars, 1);
      const { result, recording, refOf } = record(() => {
        const est = hutchinsonDiagonal(
          () => softmaxCrossEntropy(y, model.apply(ids) as tf.Tensor),
          vars,
          { probes, checkFinite: false },
        );
        return [est.loss, ...est.grads, ...est.diagonal];
      });
      const outputs = result.map((t) => ({ ref: refOf(t)!, shape: [...t.shape] }));
      const inputIds = new Set([...vars, ...probes.flat()].map((t) => t.dataId as object));
      for (const ext of recording.externals) if (inputIds.has(ext.dataId!)) delete ext.values;

      const plain = withSumChains(undefined, () => buildStepGraph(recording, outputs));
      const fused = withSumChains('1', () => buildStepGraph(recording, outputs));
      const sums = (b: BuiltGraph) => b.graph.nodes.filter((n) => n.opType === 'Sum').length;
      const adds = (b: BuiltGraph) => b.graph.nodes.filter((n) => n.opType === 'Add').length;
      assert.ok(sums(fused) > sums(plain), `Sums: ${sums(plain)} -> ${sums(fused)}`);
      // Each Sum of n operands stands for n - 1 Adds (or an AddN's Sum and the Adds it took).
      assert.ok(adds(fused) < adds(plain), `Adds: ${adds(plain)} -> ${adds(fused)}`);

      const [want] = runBuiltGraph(plain, recording);
      const [got] = runBuiltGraph(fused, recording);
      got!.forEach((g, k) => {
        assert.deepEqual(Array.from(g), Array.from(want![k]!), `output ${k}`);
      });
      tf.dispose([...result, ids, y, ...probes.flat()]);
      model.dispose();
      assert.equal(tf.memory().numTensors, tensorsBefore);
    },
  );
});
