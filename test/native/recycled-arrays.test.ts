/**
 * Recycled arrays (src/native/recycled-arrays.ts): a disposed tensor's array is handed out
 * again only when nothing but our readers saw it (not after dataSync, a TF.js kernel's read,
 * or while another tensor or variable still holds the data), and AdaHessian and Adam (their
 * replayed step graphs and fused updates) trained with the native path reuse their arrays yet
 * give the same weights, bit for bit, as with new arrays, without ever writing into an array a
 * user read.
 */
import { afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { adahessian, buildMlp, softmaxCrossEntropy } from '../../src/index.js';
import { disableNativeKernels, enableNativeKernels } from '../../src/native/index.js';
import { onnxRuntimeUnavailableReason } from '../../src/native/onnx-runtime.js';
import {
  disableRecycledArrays,
  enableRecycledArrays,
  recycledArraysStatus,
  recycledTensor,
  recycledValues,
  setResidentArrays,
  takeArray,
  takeResidentArray,
} from '../../src/native/recycled-arrays.js';
import { adaHessianSimd } from '../../src/native/adahessian-simd.js';
import { onBackend } from '../helpers.js';

const unavailable = onnxRuntimeUnavailableReason();

/** A recycled tensor of `n` values 1..n, and its array. */
function made(n: number): { t: tf.Tensor; values: Float32Array } {
  const values = takeArray(n);
  for (let i = 0; i < n; i++) values[i] = i + 1;
  return { t: recycledTensor(values, [n]), values };
}

describe('recycled arrays (cpu)', () => {
  before(async () => {
    await onBackend('cpu');
  });
  afterEach(() => disableRecycledArrays());

  it('hands an unseen array out again once its data is deleted', () => {
    enableRecycledArrays();
    const { t, values } = made(7);
    // Our own readers do not mark it.
    assert.equal(recycledValues(tf.backend(), t.dataId), values);
    t.dispose();
    assert.equal(takeArray(7), values);
    assert.notEqual(takeArray(7), values);
  });

  it('never hands out an array that was read (dataSync, a kernel) or whose data is still held', () => {
    enableRecycledArrays();
    const a = made(5);
    assert.deepEqual(Array.from(a.t.dataSync()), [1, 2, 3, 4, 5]);
    a.t.dispose();
    const b = made(5);
    tf.tidy(() => tf.add(b.t, 1)).dispose();
    b.t.dispose();
    const c = made(5);
    const v = tf.variable(tf.zeros([5]));
    v.assign(c.t);
    c.t.dispose(); // the variable still holds the data
    const taken = takeArray(5);
    assert.ok(![a.values, b.values, c.values].includes(taken));
    v.dispose(); // now deleted, never read by anyone else
    assert.equal(takeArray(5), c.values);
    assert.equal(recycledArraysStatus()!.seenAndKept, 2);
  });

  it('makes plain tensors when off', () => {
    const { t, values } = made(3);
    assert.equal(recycledValues(tf.backend(), t.dataId), null);
    t.dispose();
    assert.notEqual(takeArray(3), values);
    assert.equal(recycledArraysStatus(), null);
  });
});

describe(
  'recycled arrays in AdaHessian and Adam steps (cpu + native)',
  { skip: unavailable || false },
  () => {
    before(async () => {
      await onBackend('cpu');
    });

    /**
     * AdaHessian (or tf.train.adam: its first-order step graph and fused update) on a small MLP
     * through the native path (step graphs replay), `steps` steps.
     */
    function train(
      recycle: boolean,
      steps: number,
      peekAt: number,
      useAdam = false,
      resident = true,
    ) {
      setResidentArrays(resident);
      const previous = process.env['ADAHESSIAN_RECYCLED_ARRAYS'];
      process.env['ADAHESSIAN_RECYCLED_ARRAYS'] = recycle ? '1' : '0';
      try {
        enableNativeKernels();
      } finally {
        if (previous == null) delete process.env['ADAHESSIAN_RECYCLED_ARRAYS'];
        else process.env['ADAHESSIAN_RECYCLED_ARRAYS'] = previous;
      }
      const tensorsBefore = tf.memory().numTensors;
      const model = buildMlp({ seed: 4, inputShape: [12], hidden: 10, classes: 5 });
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const opt = useAdam ? tf.train.adam(0.01) : adahessian({ learningRate: 0.05, seed: 2 });
      const x = tf.randomNormal([6, 12], 0, 1, 'float32', 30);
      const y = tf.tidy(() => tf.oneHot(tf.randomUniform([6], 0, 5, 'int32', 40), 5));
      // A user's read mid-run: the array dataSync gave must never change afterwards.
      let peeked: { array: Float32Array; copy: Float32Array } | null = null;
      for (let s = 0; s < steps; s++) {
        opt.minimize(() => softmaxCrossEntropy(y, model.apply(x) as tf.Tensor), false, vars);
        if (s === peekAt) {
          const array = vars[0]!.dataSync() as Float32Array;
          peeked = { array, copy: array.slice() };
        }
      }
      // Weights that live in AdaHessian's SIMD memory (read without marking them).
      const simd = adaHessianSimd();
      const residentWeights = vars.filter((v) => {
        const values = recycledValues(tf.backend(), v.dataId);
        return values != null && simd != null && simd.resident.holds(values);
      }).length;
      const weights = vars.map((v) => Array.from(v.dataSync()));
      const reused = recycledArraysStatus()?.reused ?? 0;
      setResidentArrays(true);
      tf.dispose([x, y]);
      opt.dispose();
      model.dispose();
      disableNativeKernels();
      assert.equal(tf.memory().numTensors, tensorsBefore);
      return { weights, reused, peeked: peeked!, residentWeights };
    }

    it("AdaHessian's w, m, v in its SIMD memory (read and written in place) give the same bits; a read array stays as read", () => {
      const elsewhere = train(true, 12, 5, false, false);
      const resident = train(true, 12, 5, false, true);
      assert.equal(elsewhere.residentWeights, 0);
      // All four (one of odd length: the loop's spare lane reads the slack) after the steps.
      assert.equal(resident.residentWeights, 4);
      assert.deepEqual(resident.weights, elsewhere.weights);
      // vars[0] was resident when read: the reader got a copy, never written again.
      assert.deepEqual(resident.peeked.array, resident.peeked.copy);
    });

    it('reuses arrays and gives the weights of new arrays, bit for bit; a read array stays as read', () => {
      // Resident arrays off: all of the step's arrays go through the recycled pool.
      const plain = train(false, 12, 5, false, false);
      const recycled = train(true, 12, 5, false, false);
      assert.equal(plain.reused, 0);
      // Probes, the graph's outputs and w, m, v of the replayed steps.
      assert.ok(recycled.reused > 40, `reused ${recycled.reused}`);
      assert.deepEqual(recycled.weights, plain.weights);
      assert.deepEqual(recycled.peeked.array, recycled.peeked.copy);
    });

    it("Adam's replayed steps reuse the gradients' and w, m, v's arrays, bits unchanged; a read array stays as read", () => {
      const plain = train(false, 12, 5, true);
      const recycled = train(true, 12, 5, true);
      assert.equal(plain.reused, 0);
      // The graph's gradient and the update's w, m, v of 4 variables: 16 arrays a replayed step.
      assert.ok(recycled.reused > 100, `reused ${recycled.reused}`);
      assert.deepEqual(recycled.weights, plain.weights);
      assert.deepEqual(recycled.peeked.array, recycled.peeked.copy);
    });
  },
);

describe(
  'resident arrays (AdaHessian SIMD memory, cpu)',
  { skip: adaHessianSimd() == null },
  () => {
    before(async () => {
      await onBackend('cpu');
    });
    afterEach(() => disableRecycledArrays());
    const source = () => adaHessianSimd()!.resident;

    /** A resident tensor of `n` values 1..n, and its array. */
    function residentMade(n: number): { t: tf.Tensor; values: Float32Array } {
      const values = takeResidentArray(n, source());
      for (let i = 0; i < n; i++) values[i] = i + 1;
      return { t: recycledTensor(values, [n], source()), values };
    }

    it('hands out arrays in the memory, and an unseen one again once its data is deleted', () => {
      enableRecycledArrays();
      const { t, values } = residentMade(9);
      assert.ok(source().holds(values));
      assert.equal(recycledValues(tf.backend(), t.dataId), values);
      t.dispose();
      assert.equal(takeResidentArray(9, source()), values);
      // Too large for the memory, or recycling off: plain arrays.
      assert.ok(!source().holds(takeResidentArray(16 * 1024 * 1024, source())));
      disableRecycledArrays();
      assert.ok(!source().holds(takeResidentArray(9, source())));
    });

    it('gives the first other reader a copy and its region back at once, never twice', () => {
      enableRecycledArrays();
      const { t, values } = residentMade(6);
      const read = t.dataSync() as Float32Array;
      assert.notEqual(read, values);
      assert.ok(!source().holds(read));
      assert.deepEqual(Array.from(read), [1, 2, 3, 4, 5, 6]);
      // The region is free again; writing it changes neither the reader's copy nor the tensor.
      const again = takeResidentArray(6, source());
      assert.equal(again, values);
      again.fill(-1);
      assert.deepEqual(Array.from(read), [1, 2, 3, 4, 5, 6]);
      const sum = tf.add(t, 0);
      assert.deepEqual(Array.from(sum.dataSync()), [1, 2, 3, 4, 5, 6]);
      sum.dispose();
      // Disposing the tensor now (seen) does not give the region back a second time.
      t.dispose();
      assert.notEqual(takeResidentArray(6, source()), values);
    });

    it('the SIMD update reads and writes resident arrays in place: the bits of copying, over chunks', () => {
      enableRecycledArrays();
      const simd = adaHessianSimd()!;
      const n = 2 * 32768 + 7; // three chunks, the last of odd length
      let seed = 5;
      const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1;
      const operands = ['w', 'g', 'm', 'v', 'd'].map((name) => {
        const plain = Float32Array.from({ length: n }, () =>
          name === 'v' ? Math.abs(random()) * 1e-3 : random(),
        );
        const inMemory = takeResidentArray(n, simd.resident);
        inMemory.set(plain);
        return { plain, inMemory };
      });
      const scalars = {
        beta1: 0.9,
        beta2: 0.999,
        biasCorrection1: 0.4,
        biasCorrection2: 0.02,
        learningRate: 0.1,
        epsilon: 1e-4,
      };
      const run = (where: 'plain' | 'inMemory', out: () => Float32Array) => {
        const [w, g, m, v, d] = operands.map((o) => o[where]);
        const outs = [out(), out(), out()] as const;
        const inputs = { w: w!, g: g!, m: m!, v: v!, diagonal: d!, ...scalars };
        assert.equal(simd.raw.update(inputs, ...outs), true);
        return outs.map((o) => Array.from(o));
      };
      const want = run('plain', () => new Float32Array(n));
      assert.deepEqual(
        run('inMemory', () => takeResidentArray(n, simd.resident)),
        want,
      );
      assert.deepEqual(
        run('plain', () => takeResidentArray(n, simd.resident)),
        want,
      );
      assert.deepEqual(
        run('inMemory', () => new Float32Array(n)),
        want,
      );
    });
  },
);
