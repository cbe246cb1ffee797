/**
 * filter-grad-pairs.ts: per-tap filter gradients that multiply the same taps become one stacked
 * product per tap. Pinned: which node patterns stack and which do not (the rewrite on hand-made
 * nodes, and the order it leaves), and on a small CNN's AdaHessian step that the built graph
 * stacks its second conv's gradient with the sweep's term of the same taps, giving the values
 * of the graph without the rewrite bit for bit and those of TF.js's kernels op by op to float32
 * rounding; its first-order graph is left as it is.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { OnnxNode } from '../../../src/native/onnx-model.js';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import { buildStepGraph } from '../../../src/native/step-graph/build.js';
import { stackFilterGradients } from '../../../src/native/step-graph/filter-grad-pairs.js';
import { nchwcBlockSize } from '../../../src/native/step-graph/translate-conv.js';
import { onBackend } from '../../helpers.js';
import {
  largestDifferences,
  recordGradients,
  recordSmallCnnStep,
  runBuiltGraph,
  withEnv,
} from './helpers.js';

const NCHWC = 'com.microsoft.nchwc';
const unavailable = onnxRuntimeUnavailableReason();
if (unavailable !== '') console.log(`# filter-grad-pairs graph tests skipped: ${unavailable}`);

const TAPS = 3;
/**
 * One filter gradient as translate-conv.ts writes it: dy (`d`) transposed by NCHWc reorders,
 * the taps sliced from Pad(`x`), one MatMul per tap, their Concat, then `y` (names prefixed).
 */
function filterGradient(p: string, x: string, d: string, channelsFirst = 1): OnnxNode[] {
  const nodes: OnnxNode[] = [
    { opType: 'Pad', inputs: [x, 'pads'], outputs: [`${p}xp`] },
    { opType: 'Reshape', inputs: [d, 'd4Shape'], outputs: [`${p}d4`] },
    { opType: 'ReorderInput', domain: NCHWC, inputs: [`${p}d4`], outputs: [`${p}db`] },
    {
      opType: 'ReorderOutput',
      domain: NCHWC,
      inputs: [`${p}db`],
      outputs: [`${p}dn`],
      attributes: {
        channels: { kind: 'int', value: 8 },
        channels_last: { kind: 'int', value: 1 - channelsFirst },
      },
    },
    { opType: 'Reshape', inputs: [`${p}dn`, 'dtShape'], outputs: [`${p}dt`] },
  ];
  for (let t = 0; t < TAPS; t++) {
    nodes.push(
      { opType: 'Slice', inputs: [`${p}xp`, `start${t}`, `end${t}`], outputs: [`${p}tap${t}`] },
      { opType: 'Reshape', inputs: [`${p}tap${t}`, 'tapShape'], outputs: [`${p}tr${t}`] },
      { opType: 'MatMul', inputs: [`${p}dt`, `${p}tr${t}`], outputs: [`${p}g${t}`] },
    );
  }
  nodes.push(
    {
      opType: 'Concat',
      inputs: Array.from({ length: TAPS }, (_, t) => `${p}g${t}`),
      outputs: [`${p}g`],
      attributes: { axis: { kind: 'int', value: 0 } },
    },
    { opType: 'Transpose', inputs: [`${p}g`], outputs: [`${p}y`] },
  );
  return nodes;
}

function stack(nodes: OnnxNode[], outputs: string[]): OnnxNode[] {
  return stackFilterGradients(nodes, { outputs, int64s: (v) => `i${v.join('_')}` });
}
const count = (nodes: OnnxNode[], op: string) => nodes.filter((n) => n.opType === op).length;
/** Every input is a graph input or made by an earlier node. */
function assertOrdered(nodes: OnnxNode[], inputs: string[]): void {
  const made = new Set(nodes.flatMap((n) => n.outputs));
  const ready = new Set(inputs);
  for (const n of nodes) {
    for (const i of n.inputs)
      assert.ok(!made.has(i) || ready.has(i), `${n.opType} reads ${i} early`);
    n.outputs.forEach((o) => ready.add(o));
  }
}

describe('filter-grad-pairs.ts: filter gradients of the same taps stacked', () => {
  it('stacks the gradient corr(x, dy) with the sweep corr(x, dyDot), and shares a transpose written twice', () => {
    // The gradient, an unrelated node, the sweep's corr(xDot, dy) and corr(x, dyDot).
    const gradient = filterGradient('g_', 'x', 'dy');
    const sweepDy = filterGradient('a_', 'xDot', 'dy');
    const sweepX = filterGradient('b_', 'x', 'dyDot');
    const nodes = [
      ...gradient,
      { opType: 'Neg', inputs: ['g_y'], outputs: ['n'] },
      ...sweepDy,
      ...sweepX,
      { opType: 'Add', inputs: ['a_y', 'b_y'], outputs: ['s'] },
    ];
    const out = stack(nodes, ['n', 's']);
    // 3 groups of 3 products -> the stacked 3 and the 3 of xDot's taps.
    assert.equal(count(out, 'MatMul'), 2 * TAPS);
    // x padded and sliced once (the gradient's copy gone), dy transposed once.
    assert.equal(count(out, 'Pad'), 2);
    assert.equal(count(out, 'Slice'), 2 * TAPS + 2);
    assert.equal(count(out, 'ReorderOutput'), 2);
    const stackedA = out.find((n) => n.opType === 'Concat' && n.outputs[0]!.endsWith('_stackedA'));
    assert.deepEqual(stackedA?.inputs, ['g_dt', 'b_dt']);
    for (const m of out.filter((n) => n.opType === 'MatMul' && n.inputs[1]!.startsWith('a_')))
      assert.equal(m.inputs[0], 'g_dt');
    // Each group's rows of the stacked products, in the order stacked.
    const rows = out.filter((n) => n.opType === 'Slice' && n.inputs[0]!.endsWith('_stacked'));
    assert.deepEqual(
      rows.map((n) => [n.outputs[0], ...n.inputs.slice(1)]),
      [
        ['g_g', 'i0', 'i8', 'i1'],
        ['b_g', 'i8', 'i16', 'i1'],
      ],
    );
    assertOrdered(out, ['x', 'xDot', 'dy', 'dyDot']);
    // The gradient's readers now follow the stacked products.
    const at = (name: string) => out.findIndex((n) => n.outputs.includes(name));
    assert.ok(at('n') > at('g_g') && at('g_g') > at(stackedA!.outputs[0]!));
  });

  it('leaves everything else as it is', () => {
    const pair = (a: OnnxNode[], b: OnnxNode[]) => [...a, ...b];
    const cases: [string, OnnxNode[], string[]][] = [
      ['one filter gradient', filterGradient('g_', 'x', 'dy'), ['g_y']],
      [
        'other taps',
        pair(filterGradient('g_', 'x', 'dy'), filterGradient('b_', 'x2', 'dyDot')),
        ['g_y', 'b_y'],
      ],
      [
        'dy written channels-last (not a transpose)',
        pair(filterGradient('g_', 'x', 'dy', 0), filterGradient('b_', 'x', 'dyDot', 0)),
        ['g_y', 'b_y'],
      ],
      [
        'a product read by another node too',
        pair(filterGradient('g_', 'x', 'dy'), filterGradient('b_', 'x', 'dyDot')),
        ['g_y', 'b_y', 'g_g0'],
      ],
    ];
    for (const [what, nodes, outputs] of cases)
      assert.deepEqual(stack(nodes, outputs), nodes, what);

    const nodes = pair(filterGradient('g_', 'x', 'dy'), filterGradient('b_', 'x', 'dyDot'));
    withEnv({ ADAHESSIAN_FILTER_GRAD_PAIRS: '0' }, () =>
      assert.deepEqual(stack(nodes, ['g_y', 'b_y']), nodes, 'the switch off'),
    );
  });

  it(
    "a small CNN's AdaHessian step graph: stacked, bit for bit the graph without, and as op by op",
    { skip: unavailable || nchwcBlockSize() === 0 || false },
    async () => {
      await onBackend('cpu');
      const tensorsBefore = tf.memory().numTensors;
      const { result, recording, outputs, loss, vars, dispose } = recordSmallCnnStep();
      const without = <T>(build: () => T) => withEnv({ ADAHESSIAN_FILTER_GRAD_PAIRS: '0' }, build);
      const plain = without(() => buildStepGraph(recording, outputs));
      const stacked = buildStepGraph(recording, outputs);
      const matmuls = (b: ReturnType<typeof buildStepGraph>) =>
        b.graph.nodes.filter((n) => n.opType === 'MatMul').length;
      // The second conv's 3x3 filter gradient and the sweep's corr(x, dyDot): 9 products fewer.
      assert.equal(matmuls(stacked), matmuls(plain) - 9);

      const [want] = runBuiltGraph(plain, recording);
      const [got] = runBuiltGraph(stacked, recording);
      const opByOp = result.map((t) => t.dataSync());
      got!.forEach((g, k) => {
        const { scale, fromOps } = largestDifferences(g, want![k]!, opByOp[k]!);
        // The same dot products in the same order: the same bits.
        assert.deepEqual(g, want![k], `output ${k}: not the plain graph's bits`);
        assert.ok(fromOps <= 1e-4 * scale, `output ${k}: ${fromOps} from op by op (${scale})`);
      });

      // The first-order graph has no sweep: nothing to stack.
      const first = recordGradients(loss, vars);
      const firstPlain = without(() => buildStepGraph(first.recording, first.outputs));
      const firstBuilt = buildStepGraph(first.recording, first.outputs);
      assert.deepEqual(firstBuilt.graph.nodes, firstPlain.graph.nodes);
      tf.dispose(first.result);
      dispose();
      assert.equal(tf.memory().numTensors, tensorsBefore);
    },
  );
});
