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

/**
 * A sum or mean over the rows of [R, N] (here NHWC [8, 7, 7, 16] over its first three axes, a
 * conv's bias gradient): the graph built for `threads`, run on `threads`, against TF.js; and the
 * ONNX reductions the graph holds.
 */
function rowReduction(
  kernel: 'sum' | 'mean',
  threads: number,
): { err: number; scale: number; ops: string[]; shapes: number[][] } {
  const x = tf.randomNormal([8, 7, 7, 16], 0.5, 1, 'float32', 9);
  const { result, recording, refOf } = record(() =>
    kernel === 'sum' ? tf.sum(x, [0, 1, 2]) : tf.mean(x, [0, 1, 2]),
  );
  const built = buildStepGraph(recording, [{ ref: refOf(result)!, shape: [...result.shape] }], {
    threads,
  });
  const want = result.dataSync();
  const [[got]] = runBuiltGraph(built, recording, { threads, runs: 1 });
  let err = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]!));
    err = Math.max(err, Math.abs(got![i]! - want[i]!));
  }
  const reductions = built.graph.nodes.filter((n) => n.opType.startsWith('Reduce'));
  // The shapes the reductions read: the Reshape targets (int64 initializers) feeding them.
  const shapeOf = new Map(
    built.graph.nodes
      .filter((n) => n.opType === 'Reshape')
      .map((n) => [n.outputs[0]!, n.inputs[1]!] as const),
  );
  const init = new Map(
    (built.graph.tensorInitializers ?? [])
      .filter((i) => i.dtype === 'int64')
      .map((i) => [i.name, Array.from(new BigInt64Array(i.raw.slice().buffer), Number)]),
  );
  const shapes = reductions.map((n) => init.get(shapeOf.get(n.inputs[0]!) ?? '') ?? []);
  tf.dispose([x, result]);
  return { err, scale, ops: reductions.map((n) => n.opType), shapes };
}

describe('step graphs on two threads (cpu)', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));

  // ONNX Runtime splits [R, N]'s N columns among its threads, each walking all rows: 3-27x
  // slower on two threads than on one (bench/speed/reduce-threads.ts). Blocks of rows instead.
  for (const kernel of ['sum', 'mean'] as const) {
    it(`${kernel}s [R, N] over its rows in row blocks on two threads, as TF.js; one reduction on one`, () => {
      const start = tf.memory().numTensors;
      const op = kernel === 'sum' ? 'ReduceSum' : 'ReduceMean';
      const two = rowReduction(kernel, 2);
      assert.deepEqual(two.ops, [op, op], 'blocks, then their partial rows');
      // 392 rows: 14 blocks of 28 (the largest divisor up to 8 per thread).
      assert.deepEqual(two.shapes[0], [14, 28, 16]);
      assert.ok(two.scale > 0);
      assert.ok(two.err <= 1e-5 * two.scale, `differs by ${two.err} against ${two.scale}`);
      const one = rowReduction(kernel, 1);
      assert.deepEqual(one.ops, [op], 'one thread keeps the plain reduction (its rounding)');
      assert.deepEqual(one.shapes[0], [392, 16]);
      assert.ok(one.err <= 1e-5 * one.scale, `differs by ${one.err} against ${one.scale}`);
      assert.equal(tf.memory().numTensors, start, 'no tensors leaked');
    });
  }

  it("gives an embedding's gradient (a segment sum over repeated ids) as TF.js, run after run", () => {
    const start = tf.memory().numTensors;
    const { err, scale } = worstOverRuns(2, 20);
    assert.ok(scale > 0);
    assert.ok(err <= 1e-5 * scale, `differs by ${err} against a scale of ${scale}`);
    assert.equal(tf.memory().numTensors, start, 'no tensors leaked');
  });
});
