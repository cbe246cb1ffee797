/**
 * The step-graph translation of Step (translate.ts), relu's gradient mask: recorded alone and
 * inside relu's gradient, built into a graph and run by ONNX Runtime, against TF.js's own cpu
 * kernel bit for bit on special values (NaN of either sign, +-Infinity, signed zeros,
 * denormals) at every position of a vector register and in the tail. NaN must stay NaN (its
 * payload may differ: TF.js's kernel writes its own). alpha != 0 takes the Where form.
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
if (unavailable !== '') console.log(`# step-graph Step test skipped: ${unavailable}`);

/** Bit patterns: +-NaN, a NaN with a payload, +-Infinity, +-0, +-smallest denormal, +-1, max. */
const SPECIAL_BITS = [
  0x7fc00000, 0xffc00000, 0x7fc00001, 0x7f800000, 0xff800000, 0x00000000, 0x80000000, 0x00000001,
  0x80000001, 0x3f800000, 0xbf800000, 0x7f7fffff,
];

/** An odd-sized array: each special value at 16 consecutive positions and in the tail. */
function specialValues(): tf.Tensor {
  const n = SPECIAL_BITS.length * 17 + 5;
  const bits = new Uint32Array(n);
  const normal = tf.tidy(() => tf.randomNormal([n], 0, 1, 'float32', 3).dataSync());
  for (let i = 0; i < n; i++) bits[i] = new Uint32Array(Float32Array.of(normal[i]!).buffer)[0]!;
  SPECIAL_BITS.forEach((b, k) => {
    for (let i = 0; i < 16; i++) bits[k * 17 + i] = b;
    bits[n - 1 - (k % 5)] = b;
  });
  return tf.tensor1d(new Float32Array(bits.buffer));
}

/** Bit for bit, except that a NaN only has to be a NaN. */
function assertSameBits(got: Float32Array, want: Float32Array, what: string): void {
  assert.equal(got.length, want.length, what);
  const gotBits = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const wantBits = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(want[i]!)) assert.ok(Number.isNaN(got[i]!), `${what}[${i}]: ${got[i]}`);
    else assert.equal(gotBits[i], wantBits[i], `${what}[${i}]: ${got[i]} against ${want[i]}`);
  }
}

function graphAndKernel(f: () => tf.Tensor): { got: Float32Array; want: Float32Array } {
  const { result, recording, refOf } = record(f);
  const built = buildStepGraph(recording, [{ ref: refOf(result)!, shape: [...result.shape] }]);
  const got = runBuiltGraph(built, recording)[0]![0]!;
  const want = result.dataSync() as Float32Array;
  result.dispose();
  return { got, want };
}

describe('step-graph translation of Step (cpu)', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));

  it('is TF.js step bit for bit on special values, alpha 0 and not', () => {
    const before = tf.memory().numTensors;
    const x = specialValues();
    for (const alpha of [0, 0.25]) {
      const { got, want } = graphAndKernel(() => tf.step(x, alpha));
      // The test must see every case: NaN, 1, alpha and +0.
      assert.ok(want.some(Number.isNaN) && want.includes(1) && want.includes(alpha));
      assertSameBits(got, want, `step alpha ${alpha}`);
    }
    x.dispose();
    assert.equal(tf.memory().numTensors, before);
  });

  it("is relu's gradient bit for bit (dy times the mask)", () => {
    const before = tf.memory().numTensors;
    const x = specialValues();
    const dy = tf.randomNormal(x.shape, 0, 1, 'float32', 4);
    const { got, want } = graphAndKernel(() => tf.grad((t: tf.Tensor) => tf.relu(t))(x, dy));
    assertSameBits(got, want, 'relu gradient');
    tf.dispose([x, dy]);
    assert.equal(tf.memory().numTensors, before);
  });
});
