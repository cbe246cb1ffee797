/**
 * Step graphs on two ONNX Runtime threads: ONNX Runtime's ScatterND 'add' loses updates to
 * repeated indices on more than one thread (microsoft/onnxruntime#18048). The step's check
 * caught it on the char transformer's embedding gradient (its graph refused on two threads,
 * the step op by op); UnsortedSegmentSum is translated as a product there instead
 * (translate.ts). Here: the transformer's embedding-gradient shape, as a step graph built for
 * two threads and run on two, equals TF.js's kernel, run after run (the one-thread translation,
 * ScatterND, run so differed by 7.6 against values up to 29).
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import { record } from '../../../src/native/step-graph/capture.js';
import { buildStepGraph } from '../../../src/native/step-graph/build.js';
import { onBackend } from '../../helpers.js';
import { runBuiltGraph } from './helpers.js';

const unavailable = onnxRuntimeUnavailableReason();

/** The largest difference from TF.js's segment sum over `runs` runs of a graph built for `threads`. */
function worstOverRuns(threads: number, runs: number): { err: number; scale: number } {
  const x = tf.randomNormal([4096, 64], 0, 1, 'float32', 7);
  const ids = tf.randomUniform([4096], 0, 96, 'int32', 8) as tf.Tensor1D;
  const { result, recording, refOf } = record(() => tf.unsortedSegmentSum(x, ids, 96));
  const built = buildStepGraph(recording, [{ ref: refOf(result)!, shape: [...result.shape] }], {
    threads,
  });
  const want = result.dataSync();
  let err = 0;
  let scale = 0;
  // Run on two ONNX Runtime threads, whatever the graph was built for.
  for (const [got] of runBuiltGraph(built, recording, { threads: 2, runs })) {
    for (let i = 0; i < want.length; i++) {
      scale = Math.max(scale, Math.abs(want[i]!));
      err = Math.max(err, Math.abs(got![i]! - want[i]!));
    }
  }
  tf.dispose([x, ids, result]);
  return { err, scale };
}

describe('step graphs on two threads (cpu)', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));

  it("gives an embedding's gradient (a segment sum over repeated ids) as TF.js, run after run", () => {
    const start = tf.memory().numTensors;
    const { err, scale } = worstOverRuns(2, 20);
    assert.ok(scale > 0);
    assert.ok(err <= 1e-5 * scale, `differs by ${err} against a scale of ${scale}`);
    assert.equal(tf.memory().numTensors, start, 'no tensors leaked');
  });
});
