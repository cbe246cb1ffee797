/**
 * MaxPoolGradTranspose on exactly tiling windows as one GatherElements by the winners' offsets
 * (src/native/step-graph/max-pool-indices.ts): where it is taken and where not, the same bits
 * as TF.js's kernel and as the per-position form it replaces (ties, NaN and -Infinity windows,
 * a window without a winner at a row's start, NaN, Infinity and -0 in dxBar), and a small
 * CNN's AdaHessian step graph with it: the same outputs as without, bit for bit.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { onnxRuntimeUnavailableReason } from '../../../src/native/onnx-runtime.js';
import { record } from '../../../src/native/step-graph/capture.js';
import { buildStepGraph, type BuiltGraph } from '../../../src/native/step-graph/build.js';
import { MAX_POOL_GRAD_TRANSPOSE } from '../../../src/kernels/max-pool-grad.js';
import { onBackend } from '../../helpers.js';
import { recordSmallCnnStep, runBuiltGraph, withEnv } from './helpers.js';

const unavailable = onnxRuntimeUnavailableReason();
if (unavailable !== '') console.log(`# max-pool-indices test skipped: ${unavailable}`);

/** `build()` with the rule off (`ADAHESSIAN_MAX_POOL_GRAD=scan`) or on. */
const withRule = <T>(on: boolean, build: () => T): T =>
  withEnv({ ADAHESSIAN_MAX_POOL_GRAD: on ? undefined : 'scan' }, build);

const count = (built: BuiltGraph, op: string) =>
  built.graph.nodes.filter((n) => n.opType === op).length;

/**
 * The transpose of `input`'s pooling on `dxBar`: TF.js's kernel's values, and the one-call
 * step graph's with the rule on and off.
 */
function transposeThreeWays(
  input: tf.Tensor,
  dxBar: tf.Tensor,
  attrs: Record<string, unknown>,
): { want: Float32Array; on: Float32Array; off: Float32Array; gathered: BuiltGraph } {
  const { result, recording, refOf } = record(() => {
    const output = tf.maxPool(
      input as tf.Tensor4D,
      attrs['filterSize'] as [number, number],
      attrs['strides'] as [number, number],
      'valid',
    );
    const picked = tf
      .engine()
      .runKernel(
        MAX_POOL_GRAD_TRANSPOSE,
        { dxBar, input, output },
        attrs as tf.NamedAttrMap,
      ) as tf.Tensor;
    output.dispose();
    return picked;
  });
  const outputs = [{ ref: refOf(result)!, shape: [...result.shape] }];
  const gathered = withRule(true, () => buildStepGraph(recording, outputs));
  const scanned = withRule(false, () => buildStepGraph(recording, outputs));
  const on = runBuiltGraph(gathered, recording)[0]![0]!;
  const off = runBuiltGraph(scanned, recording)[0]![0]!;
  const want = result.dataSync() as Float32Array;
  result.dispose();
  return { want, on, off, gathered };
}

/** The same float32 values, NaN for NaN, and -0 for -0 unless `signedZeros` is false. */
function assertSameBits(
  got: Float32Array,
  want: Float32Array,
  what: string,
  signedZeros = true,
): void {
  assert.equal(got.length, want.length, what);
  for (let i = 0; i < want.length; i++) {
    const same = signedZeros
      ? Object.is(got[i], want[i])
      : Object.is(got[i], want[i]) || got[i] === want[i];
    assert.ok(same, `${what}: element ${i} is ${got[i]}, not ${want[i]}`);
  }
}

describe(
  'MaxPoolGradTranspose by gathered winners (max-pool-indices.ts)',
  { skip: unavailable || false },
  () => {
    it('gathers where windows tile exactly; per-position Wheres where they do not, or with the rule off', async () => {
      await onBackend('cpu');
      const before = tf.memory().numTensors;
      // x's shape, filter, strides, whether the windows tile x exactly.
      const cases: [number[], [number, number], [number, number], boolean][] = [
        [[2, 8, 8, 3], [2, 2], [2, 2], true],
        [[1, 6, 9, 4], [3, 3], [3, 3], true],
        [[2, 4, 6, 5], [2, 3], [2, 3], true],
        [[2, 9, 7, 3], [2, 2], [2, 2], false], // a trailing row and column
      ];
      cases.forEach(([shape, filterSize, strides, tiles], k) => {
        // relu'd: many zeros, so many windows tie and the first zero must win.
        const input = tf.tidy(() =>
          tf.relu(tf.sub(tf.randomNormal(shape, 0, 1, 'float32', 10 + k), 0.5)),
        );
        const dxBar = tf.randomNormal(shape, 0, 1, 'float32', 20 + k);
        const attrs = { filterSize, strides, pad: 'valid' };
        const { want, on, off, gathered } = transposeThreeWays(input, dxBar, attrs);
        const what = `${JSON.stringify(shape)} ${JSON.stringify(filterSize)}`;
        assert.equal(count(gathered, 'GatherElements'), tiles ? 1 : 0, what);
        assertSameBits(on, want, `${what}, rule on`);
        assertSameBits(off, want, `${what}, rule off`, false);
        tf.dispose([input, dxBar]);
      });
      assert.equal(tf.memory().numTensors, before);
    });

    it('windows without a winner read 0, at a row start too; NaN, Infinity and -0 in dxBar pass as they are', async () => {
      await onBackend('cpu');
      const before = tf.memory().numTensors;
      // [1, 4, 8, 2]: two rows of four 2x2 windows per channel.
      const x = Array.from({ length: 64 }, (_, i) => ((i * 7) % 11) - 5);
      const at = (r: number, c: number, ch: number) => (r * 8 + c) * 2 + ch;
      for (const [r, c] of [
        [0, 0],
        [0, 1],
        [1, 0],
        [1, 1],
      ]) {
        x[at(r!, c!, 0)] = -Infinity; // channel 0's first window (a row's start): no winner
        x[at(r!, c! + 4, 1)] = NaN; // channel 1's third window: no winner
        x[at(r! + 2, c! + 2, 0)] = 3; // a four-way tie: the first wins
      }
      x[at(2, 6, 1)] = NaN; // first in its window, which a later element wins
      const dx = Array.from({ length: 64 }, (_, i) => i + 1);
      dx[at(2, 2, 0)] = -0; // the tie's winner
      dx[at(0, 4, 1)] = Infinity; // in a window with no winner: not read
      dx[at(3, 7, 1)] = NaN;
      dx[at(2, 7, 1)] = NaN;
      const input = tf.tensor4d(x, [1, 4, 8, 2]);
      const dxBar = tf.tensor4d(dx, [1, 4, 8, 2]);
      const attrs = { filterSize: [2, 2], strides: [2, 2], pad: 'valid' };
      const { want, on, off, gathered } = transposeThreeWays(input, dxBar, attrs);
      assert.equal(count(gathered, 'GatherElements'), 1);
      assert.equal(want[0], 0);
      assert.ok(Object.is(want[2 * 4 + 2], -0), 'the tie reads -0');
      assertSameBits(on, want, 'rule on');
      // The per-position Wheres write +0 for a -0 that wins (ONNX Runtime's Where with a
      // scalar 0 for 'else'); the gather reads dxBar's own bits, as TF.js's kernel does.
      assertSameBits(off, want, 'rule off', false);
      tf.dispose([input, dxBar]);
      assert.equal(tf.memory().numTensors, before);
    });

    it("a small CNN's AdaHessian step graph: the same outputs with the rule as without", async () => {
      await onBackend('cpu');
      const before = tf.memory().numTensors;
      const { recording, outputs, dispose } = recordSmallCnnStep(4);
      const gathered = withRule(true, () => buildStepGraph(recording, outputs));
      const scanned = withRule(false, () => buildStepGraph(recording, outputs));
      // Both poolings' sweep transposes.
      assert.equal(count(gathered, 'GatherElements'), 2);
      assert.equal(count(scanned, 'GatherElements'), 0);
      const [got] = runBuiltGraph(gathered, recording);
      const [want] = runBuiltGraph(scanned, recording);
      want!.forEach((w, k) => assertSameBits(got![k]!, w, `output ${k}`, false));
      dispose();
      assert.equal(tf.memory().numTensors, before);
    });
  },
);
