/**
 * conv-pairs.ts: two NCHWc Convs whose NHWC outputs are added become one Conv accumulating onto
 * the other's output (Sum). Pinned: which node patterns fuse and which do not (the rewrite on
 * hand-made nodes); with conv-bias.ts after it, a channel bias added to the sum goes into the
 * same Conv; and on a small CNN's AdaHessian step (the sweep's two pairs of the second conv
 * layer) that the built graph fuses them and gives the values of the graph without the rewrite,
 * and of op by op, to float32 rounding.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { OnnxAttribute, OnnxNode } from '../../../src/native/onnx-model.js';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import { buildStepGraph } from '../../../src/native/step-graph/build.js';
import { fuseConvBiases } from '../../../src/native/step-graph/conv-bias.js';
import { fuseConvPairs } from '../../../src/native/step-graph/conv-pairs.js';
import { nchwcBlockSize } from '../../../src/native/step-graph/translate-conv.js';
import { onBackend } from '../../helpers.js';
import { largestDifferences, recordSmallCnnStep, runBuiltGraph, withEnv } from './helpers.js';

const NCHWC = 'com.microsoft.nchwc';
const unavailable = onnxRuntimeUnavailableReason();
if (unavailable !== '') console.log(`# conv-pairs graph tests skipped: ${unavailable}`);

const int = (value: number): OnnxAttribute => ({ kind: 'int', value });

/** `x`k -> ReorderInput -> Conv -> ReorderOutput (NHWC, `channels`) -> y`k`. */
function convNodes(
  k: string,
  { convInputs = [`xb${k}`, `w${k}`], channels = 16, channelsLast = 1 } = {},
): OnnxNode[] {
  return [
    { opType: 'ReorderInput', domain: NCHWC, inputs: [`x${k}`], outputs: [`xb${k}`] },
    { opType: 'Conv', domain: NCHWC, inputs: convInputs, outputs: [`yb${k}`] },
    {
      opType: 'ReorderOutput',
      domain: NCHWC,
      inputs: [`yb${k}`],
      outputs: [`y${k}`],
      attributes: { channels: int(channels), channels_last: int(channelsLast) },
    },
  ];
}

const IMAGE = [2, 5, 5, 16];
const SHAPES = { y1: IMAGE, y2: IMAGE, z: IMAGE };
const ADD: OnnxNode = { opType: 'Add', inputs: ['y1', 'y2'], outputs: ['z'] };

function fuse(nodes: OnnxNode[], shapes: Record<string, number[]> = SHAPES, outputs = ['z']) {
  return fuseConvPairs(nodes, { shapes: new Map(Object.entries(shapes)), outputs });
}
const ops = (nodes: OnnxNode[]) => nodes.map((n) => n.opType).join(' ');

describe('conv-pairs.ts: added NCHWc Convs as one Conv with Sum', () => {
  it('fuses Add(ReorderOutput(Conv), ReorderOutput(Conv)): the later Conv takes the earlier one as Sum', () => {
    const fused = fuse([...convNodes('1'), ...convNodes('2'), ADD]);
    assert.equal(ops(fused), 'ReorderInput Conv ReorderInput Conv ReorderOutput');
    assert.deepEqual(fused[3]!.inputs, ['xb2', 'w2', '', 'yb1']);
    assert.deepEqual(fused[4]!.inputs, ['yb2']);
    assert.deepEqual(fused[4]!.outputs, ['z']);

    // The Add's operands the other way round, and a bias on the later Conv: still the later.
    const biased = fuse([
      ...convNodes('1'),
      ...convNodes('2', { convInputs: ['xb2', 'w2', 'b2'] }),
      { ...ADD, inputs: ['y2', 'y1'] },
    ]);
    assert.deepEqual(biased[3]!.inputs, ['xb2', 'w2', 'b2', 'yb1']);
    assert.deepEqual(biased[4]!.outputs, ['z']);
  });

  it('with conv-bias.ts after it, a channel bias added to the sum (through a same-shape Reshape) goes into the same Conv', () => {
    const nodes: OnnxNode[] = [
      ...convNodes('1'),
      ...convNodes('2'),
      ADD,
      { opType: 'Reshape', inputs: ['z', 's'], outputs: ['z2'] },
      { opType: 'Add', inputs: ['b', 'z2'], outputs: ['out'] },
    ];
    const shapes = new Map(Object.entries({ ...SHAPES, z2: IMAGE, out: IMAGE, b: [16] }));
    const paired = fuseConvPairs(nodes, { shapes, outputs: ['out'] });
    const both = fuseConvBiases(paired, { shapes, outputs: ['out'], int64s: () => 'shape' });
    assert.equal(ops(both), 'ReorderInput Conv ReorderInput Conv ReorderOutput');
    assert.deepEqual(both[3]!.inputs, ['xb2', 'w2', 'b', 'yb1']);
    assert.deepEqual(both[4]!.outputs, ['out']);
  });

  it('leaves everything else as it is', () => {
    const pair = [...convNodes('1'), ...convNodes('2')];
    const relu: OnnxNode = { opType: 'Relu', inputs: ['y1'], outputs: ['r'] };
    const withActivation = convNodes('2').map((n) =>
      n.opType === 'Conv'
        ? { ...n, attributes: { activation: { kind: 'string', value: 'Relu' } } }
        : n,
    ) as OnnxNode[];
    const cases: [string, OnnxNode[], Record<string, number[]>?, string[]?][] = [
      ['a conv output read twice', [...pair, ADD, relu]],
      ['a conv output that is a graph output', [...pair, ADD], SHAPES, ['z', 'y1']],
      ['a blocked output read twice', [...pair, ADD, { ...relu, inputs: ['yb1'] }]],
      [
        'other channel counts',
        [...convNodes('1'), ...convNodes('2', { channels: 8 }), ADD],
        { ...SHAPES, y2: [2, 5, 5, 8] },
      ],
      ['a broadcast', [...pair, ADD], { ...SHAPES, y2: [1, 1, 1, 16] }],
      ['an unknown shape', [...pair, ADD], { y1: IMAGE, z: IMAGE }],
      ['NCHW outputs', [...convNodes('1', { channelsLast: 0 }), ...convNodes('2'), ADD]],
      [
        'a Conv with a Sum already',
        [...convNodes('1'), ...convNodes('2', { convInputs: ['xb2', 'w2', '', 's'] }), ADD],
      ],
      ['a fused activation', [...convNodes('1'), ...withActivation, ADD]],
      [
        'an ONNX Conv',
        [...pair.map((n) => (n.opType === 'Conv' ? { ...n, domain: undefined } : n)), ADD],
      ],
      ['one Conv added to itself', [...convNodes('1'), { ...ADD, inputs: ['y1', 'y1'] }]],
      ['a Sub', [...pair, { ...ADD, opType: 'Sub' }]],
    ];
    for (const [what, nodes, shapes, outputs] of cases) {
      assert.deepEqual(fuse(nodes, shapes, outputs), nodes, what);
    }
  });

  it(
    "a small CNN's AdaHessian step graph: the sweep's two pairs fused, the same values as without, and as op by op",
    { skip: unavailable || nchwcBlockSize() === 0 || false },
    async () => {
      await onBackend('cpu');
      const tensorsBefore = tf.memory().numTensors;
      const { result, recording, outputs, dispose } = recordSmallCnnStep();

      const withSum = (nodes: readonly OnnxNode[]) =>
        nodes.filter((n) => n.opType === 'Conv' && n.domain === NCHWC && n.inputs.length === 4)
          .length;
      const plain = withEnv({ ADAHESSIAN_CONV_PAIRS: '0' }, () =>
        buildStepGraph(recording, outputs),
      );
      const fused = buildStepGraph(recording, outputs);
      // conv(x2, v2) + conv(dxBar2, W2), and the two backprop inputs of the second layer.
      assert.equal(withSum(plain.graph.nodes), 0);
      assert.equal(withSum(fused.graph.nodes), 2);
      // Per pair a ReorderOutput and the Add; then the bias tangent's Add and its same-shape
      // Reshape go into the Conv with Sum (conv-bias.ts), for a Reshape of the bias to [C].
      assert.equal(fused.nodeCount, plain.nodeCount - 5);

      const [want] = runBuiltGraph(plain, recording);
      const [got] = runBuiltGraph(fused, recording);
      const opByOp = result.map((t) => t.dataSync());
      got!.forEach((g, k) => {
        const { scale, fromPlain, fromOps } = largestDifferences(g, want![k]!, opByOp[k]!);
        // The sum is formed inside MLAS's accumulation: float32 rounding apart.
        assert.ok(fromPlain <= 1e-5 * scale, `output ${k}: ${fromPlain} from the plain graph`);
        assert.ok(fromOps <= 1e-4 * scale, `output ${k}: ${fromOps} from op by op (${scale})`);
      });
      dispose();
      assert.equal(tf.memory().numTensors, tensorsBefore);
    },
  );
});
