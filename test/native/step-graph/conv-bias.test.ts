/**
 * conv-bias.ts: a channel bias added to an NCHWc Conv's output becomes the Conv's bias input.
 * Pinned: which node patterns fold and which do not (the rewrite on hand-made nodes), and on a
 * small CNN's AdaHessian step (tf.layers' conv2d: Conv2D then Add; the sweep's bias tangent
 * through a same-shape Reshape) that the built graph folds them and gives the values of the
 * graph without the rewrite, and of op by op to float32 rounding.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { OnnxNode } from '../../../src/native/onnx-model.js';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import { buildStepGraph } from '../../../src/native/step-graph/build.js';
import { fuseConvBiases } from '../../../src/native/step-graph/conv-bias.js';
import { nchwcBlockSize } from '../../../src/native/step-graph/translate-conv.js';
import { onBackend } from '../../helpers.js';
import { largestDifferences, recordSmallCnnStep, runBuiltGraph, withEnv } from './helpers.js';

const NCHWC = 'com.microsoft.nchwc';
const unavailable = onnxRuntimeUnavailableReason();
if (unavailable !== '') console.log(`# conv-bias graph tests skipped: ${unavailable}`);

/** x -> ReorderInput -> Conv -> ReorderOutput (NHWC, 16 channels) -> y. */
function convNodes(y: string, convInputs = ['xb', 'w']): OnnxNode[] {
  return [
    { opType: 'ReorderInput', domain: NCHWC, inputs: ['x'], outputs: ['xb'] },
    { opType: 'Conv', domain: NCHWC, inputs: convInputs, outputs: ['yb'] },
    {
      opType: 'ReorderOutput',
      domain: NCHWC,
      inputs: ['yb'],
      outputs: [y],
      attributes: {
        channels: { kind: 'int', value: 16 },
        channels_last: { kind: 'int', value: 1 },
      },
    },
  ];
}

function fuse(nodes: OnnxNode[], shapes: Record<string, number[]>, outputs = ['z']): OnnxNode[] {
  let constants = 0;
  return fuseConvBiases(nodes, {
    shapes: new Map(Object.entries(shapes)),
    outputs,
    int64s: () => `shape${constants++}`,
  });
}

const IMAGE = [2, 5, 5, 16];
const ops = (nodes: OnnxNode[]) => nodes.map((n) => n.opType).join(' ');

describe('conv-bias.ts: channel biases into NCHWc Convs', () => {
  it('folds Add(ReorderOutput(Conv), b) for b of [C] and [1, 1, 1, C], also through a same-shape Reshape', () => {
    const add: OnnxNode = { opType: 'Add', inputs: ['y', 'b'], outputs: ['z'] };
    const vector = fuse([...convNodes('y'), add], { y: IMAGE, z: IMAGE, b: [16] });
    assert.equal(ops(vector), 'ReorderInput Conv ReorderOutput');
    assert.deepEqual(vector[1]!.inputs, ['xb', 'w', 'b']);
    assert.deepEqual(vector[2]!.outputs, ['z']);

    // The bias on the left, as [1, 1, 1, C], computed after the Conv: the Conv moves to the Add.
    const late: OnnxNode = { opType: 'Neg', inputs: ['c'], outputs: ['b4'] };
    const left: OnnxNode = { opType: 'Add', inputs: ['b4', 'y'], outputs: ['z'] };
    const moved = fuse([...convNodes('y'), late, left], { y: IMAGE, z: IMAGE, b4: [1, 1, 1, 16] });
    assert.equal(ops(moved), 'ReorderInput Neg Reshape Conv ReorderOutput');
    assert.deepEqual(moved[2]!.inputs.slice(0, 1), ['b4']);
    assert.deepEqual(moved[3]!.inputs, ['xb', 'w', moved[2]!.outputs[0]]);

    const reshape: OnnxNode = { opType: 'Reshape', inputs: ['y', 's'], outputs: ['y2'] };
    const through = fuse(
      [...convNodes('y'), reshape, { opType: 'Add', inputs: ['y2', 'b'], outputs: ['z'] }],
      { y: IMAGE, y2: IMAGE, z: IMAGE, b: [16] },
    );
    assert.equal(ops(through), 'ReorderInput Conv ReorderOutput');
    assert.deepEqual(through[2]!.outputs, ['z']);
  });

  it('leaves everything else as it is', () => {
    const add: OnnxNode = { opType: 'Add', inputs: ['y', 'b'], outputs: ['z'] };
    const shapes = { y: IMAGE, z: IMAGE, b: [16] };
    const cases: [string, OnnxNode[], Record<string, number[]>, string[]?][] = [
      ['a Conv with a bias already', [...convNodes('y', ['xb', 'w', 'b0']), add], shapes],
      [
        'a conv output read twice',
        [...convNodes('y'), add, { opType: 'Relu', inputs: ['y'], outputs: ['r'] }],
        shapes,
      ],
      ['a conv output that is a graph output', [...convNodes('y'), add], shapes, ['z', 'y']],
      ['a full-size operand', [...convNodes('y'), add], { ...shapes, b: IMAGE }],
      ['another channel count', [...convNodes('y'), add], { ...shapes, b: [8] }],
      ['an unknown shape', [...convNodes('y'), add], { y: IMAGE, z: IMAGE }],
      [
        'NCHW output',
        [
          ...convNodes('y').map((n) =>
            n.opType === 'ReorderOutput'
              ? { ...n, attributes: { ...n.attributes, channels_last: { kind: 'int', value: 0 } } }
              : n,
          ),
          add,
        ] as OnnxNode[],
        shapes,
      ],
      [
        'a reshape to another shape',
        [
          ...convNodes('y'),
          { opType: 'Reshape', inputs: ['y', 's'], outputs: ['y2'] },
          { opType: 'Add', inputs: ['y2', 'b'], outputs: ['z'] },
        ],
        { y: IMAGE, y2: [2, 25, 16], z: [2, 25, 16], b: [16] },
      ],
      ['an ONNX Conv', [...convNodes('y').map((n) => ({ ...n, domain: undefined })), add], shapes],
    ];
    for (const [what, nodes, shapeMap, outputs] of cases) {
      assert.deepEqual(fuse(nodes, shapeMap, outputs), nodes, what);
    }
  });

  it(
    "a small CNN's AdaHessian step graph: biases folded, the same values as without, and as op by op",
    { skip: unavailable || nchwcBlockSize() === 0 || false },
    async () => {
      await onBackend('cpu');
      const tensorsBefore = tf.memory().numTensors;
      const { result, recording, outputs, dispose } = recordSmallCnnStep();

      const biased = (nodes: readonly OnnxNode[]) =>
        nodes.filter((n) => n.opType === 'Conv' && n.domain === NCHWC && (n.inputs[2] ?? '') !== '')
          .length;
      const plain = withEnv({ ADAHESSIAN_CONV_BIAS: '0' }, () =>
        buildStepGraph(recording, outputs),
      );
      const fused = buildStepGraph(recording, outputs);
      // Both forward bias adds and the sweep's tangents of both (the second one's Conv is
      // conv-pairs.ts's Conv with Sum: the bias tangent is added to the pair's sum).
      assert.equal(biased(plain.graph.nodes), 0);
      assert.equal(biased(fused.graph.nodes), 4);
      // 4 Adds and 2 same-shape Reshapes go; the sweep's [1, 1, 1, C] biases get Reshapes to [C].
      assert.equal(fused.nodeCount, plain.nodeCount - 4);

      const [want] = runBuiltGraph(plain, recording);
      const [got] = runBuiltGraph(fused, recording);
      const opByOp = result.map((t) => t.dataSync());
      got!.forEach((g, k) => {
        const { scale, fromPlain, fromOps } = largestDifferences(g, want![k]!, opByOp[k]!);
        // MLAS adds the bias to the finished sum, as the Add did: the same value.
        assert.ok(fromPlain <= 1e-6 * scale, `output ${k}: ${fromPlain} from the plain graph`);
        assert.ok(fromOps <= 1e-4 * scale, `output ${k}: ${fromOps} from op by op (${scale})`);
      });
      dispose();
      assert.equal(tf.memory().numTensors, tensorsBefore);
    },
  );
});
