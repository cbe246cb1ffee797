/**
 * nchwc-duplicates.ts: equal com.microsoft.nchwc nodes computed once (ONNX Runtime's own
 * common-subexpression elimination skips them). Pinned: which nodes merge and which do not (the
 * rewrite on hand-made nodes), and on a small CNN's AdaHessian step that the sweep's two repeated
 * ReorderInputs go, with the same outputs bit for bit as without.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { OnnxAttribute, OnnxNode } from '../../../src/native/onnx-model.js';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import { buildStepGraph } from '../../../src/native/step-graph/build.js';
import { mergeNchwcDuplicates } from '../../../src/native/step-graph/nchwc-duplicates.js';
import { nchwcBlockSize } from '../../../src/native/step-graph/translate-conv.js';
import { onBackend } from '../../helpers.js';
import { recordSmallCnnStep, runBuiltGraph, withEnv } from './helpers.js';

const NCHWC = 'com.microsoft.nchwc';
const unavailable = onnxRuntimeUnavailableReason();
if (unavailable !== '') console.log(`# nchwc-duplicates graph test skipped: ${unavailable}`);

const last = (value: number): Record<string, OnnxAttribute> => ({
  channels_last: { kind: 'int', value },
});
const reorder = (x: string, y: string, channelsLast = 1): OnnxNode => ({
  opType: 'ReorderInput',
  domain: NCHWC,
  inputs: [x],
  outputs: [y],
  attributes: last(channelsLast),
});
const conv = (x: string, w: string, y: string): OnnxNode => ({
  opType: 'Conv',
  domain: NCHWC,
  inputs: [x, w],
  outputs: [y],
});
const merge = (nodes: OnnxNode[], outputs = ['out'], enabled = true) =>
  mergeNchwcDuplicates(nodes, { outputs, enabled });

describe('nchwc-duplicates.ts: equal NCHWc nodes computed once', () => {
  it('merges a repeated node, its readers read the first, and what repeats through it', () => {
    const nodes: OnnxNode[] = [
      reorder('x', 'a'),
      conv('a', 'w', 'y1'),
      reorder('x', 'b'),
      { opType: 'Relu', inputs: ['b'], outputs: ['r'] },
      // Equal once b is a: merged too.
      conv('b', 'w', 'y2'),
      { opType: 'Add', inputs: ['y1', 'y2'], outputs: ['out'] },
    ];
    const merged = merge(nodes);
    assert.deepEqual(
      merged.map((n) => `${n.opType}(${n.inputs.join(',')})`),
      ['ReorderInput(x)', 'Conv(a,w)', 'Relu(a)', 'Add(y1,y1)'],
    );
  });

  it('leaves everything else as it is', () => {
    const cases: [string, OnnxNode[], string[]?, boolean?][] = [
      ['other inputs', [reorder('x', 'a'), reorder('x2', 'b')]],
      ['other attributes', [reorder('x', 'a'), reorder('x', 'b', 0)]],
      ['no attributes against some', [reorder('x', 'a'), { ...reorder('x', 'b'), attributes: {} }]],
      ['another op', [reorder('x', 'a'), { ...reorder('x', 'b'), opType: 'ReorderOutput' }]],
      [
        'ONNX-domain nodes (ONNX Runtime merges those)',
        [
          { opType: 'Relu', inputs: ['x'], outputs: ['a'] },
          { opType: 'Relu', inputs: ['x'], outputs: ['b'] },
        ],
      ],
      ['a repeat that writes a graph output', [reorder('x', 'a'), reorder('x', 'b')], ['b']],
      [
        'disabled (a step too large to keep values alive)',
        [reorder('x', 'a'), reorder('x', 'b')],
        ['out'],
        false,
      ],
    ];
    for (const [what, nodes, outputs, enabled] of cases) {
      assert.deepEqual(merge(nodes, outputs, enabled), nodes, what);
    }
  });

  it(
    "a small CNN's AdaHessian step graph: the sweep's repeated ReorderInputs go, the same outputs bit for bit",
    { skip: unavailable || nchwcBlockSize() === 0 || false },
    async () => {
      await onBackend('cpu');
      const tensorsBefore = tf.memory().numTensors;
      const { recording, outputs, dispose } = recordSmallCnnStep();
      const reorders = (nodes: readonly OnnxNode[]) =>
        nodes.filter((n) => n.opType === 'ReorderInput').length;
      const plain = withEnv({ ADAHESSIAN_NCHWC_DUPLICATES: '0' }, () =>
        buildStepGraph(recording, outputs),
      );
      const merged = buildStepGraph(recording, outputs);
      // The second conv's input (forward and sweep) and dy of its backprop input (gradient and sweep).
      assert.equal(reorders(merged.graph.nodes), reorders(plain.graph.nodes) - 2);
      assert.equal(merged.nodeCount, plain.nodeCount - 2);
      const [want] = runBuiltGraph(plain, recording);
      const [got] = runBuiltGraph(merged, recording);
      got!.forEach((g, k) => assert.deepEqual(g, want![k], `output ${k}`));
      dispose();
      assert.equal(tf.memory().numTensors, tensorsBefore);
    },
  );
});
