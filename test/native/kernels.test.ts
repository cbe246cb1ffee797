/**
 * The native kernels against TF.js's own kernels on random shapes, strides, paddings and
 * dilations (NHWC), forward and both gradients, plus matmul variants. Each comparison runs
 * the same op with the native path off and on, and checks that the native path really ran.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { onBackend } from '../helpers.js';
import { MAX_POOL_GRAD_TRANSPOSE, RELU_GRAD } from '../../src/kernels/index.js';
import { gradAndHvp } from '../../src/autodiff/hvp.js';
import { mulberry32 } from '../../src/util/mulberry32.js';
import {
  disableNativeKernels,
  enableNativeKernels,
  nativeKernelStatus,
} from '../../src/native/index.js';
import {
  onnxRuntimeUnavailableReason,
  reloadOnnxRuntimeForTesting,
} from '../../src/native/onnx-runtime.js';

const unavailable = onnxRuntimeUnavailableReason();
if (unavailable !== '') console.log(`# native kernel tests skipped: ${unavailable}`);

/** Deterministic pseudo-random numbers. */
const rng = mulberry32;
const randInt = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const randTensor = (shape: number[], seed: number) =>
  tf.randomUniform(shape, -1, 1, 'float32', seed) as tf.Tensor;

/** Runs `f` with TF.js kernels and with native ones; asserts agreement and native use. */
function compare(label: string, f: () => tf.Tensor | tf.Tensor[], minNativeCalls = 1): void {
  disableNativeKernels();
  const expectedTensors = tf.tidy(() => [f()].flat().map((t) => tf.keep(t)));
  const expected = expectedTensors.map((t) => ({ shape: t.shape, values: t.dataSync().slice() }));
  tf.dispose(expectedTensors);
  const status = enableNativeKernels({ threads: 1 });
  assert.equal(status.enabled, true, status.reason);
  const actualTensors = tf.tidy(() => [f()].flat().map((t) => tf.keep(t)));
  const stats = nativeKernelStatus();
  assert.ok(
    stats.nativeCalls >= minNativeCalls,
    `${label}: expected the native path to run (native ${stats.nativeCalls}, fallback ${stats.fallbackCalls}, last error ${stats.lastError})`,
  );
  actualTensors.forEach((actual, i) => {
    const ref = expected[i]!;
    assert.deepEqual(actual.shape, ref.shape, `${label}: output ${i} shape`);
    const got = actual.dataSync();
    let scale = 1;
    for (const v of ref.values) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
    let diff = 0;
    ref.values.forEach((v, j) => {
      // NaN where TF.js gives NaN, and nowhere else.
      assert.equal(Number.isNaN(got[j]!), Number.isNaN(v), `${label}: NaN at ${j}`);
      if (!Number.isNaN(v)) diff = Math.max(diff, Math.abs(got[j]! - v));
    });
    assert.ok(diff <= 1e-4 * scale, `${label}: output ${i} differs by ${diff} (scale ${scale})`);
    actual.dispose();
  });
  disableNativeKernels();
}

/**
 * compare() on the second of two runs of `f`: the first compiles every graph, so that in the
 * second, outputs can be deferred and fused.
 */
function compareSecondRun(label: string, f: () => tf.Tensor[]): void {
  compare(label, () => {
    tf.dispose(f());
    return f();
  });
}

/** The fused calls (nativeKernelStatus) during the second of two native runs of `f`. */
function fusedCallsOnSecondRun(f: () => tf.Tensor[]): number {
  enableNativeKernels({ threads: 1 });
  tf.dispose(f());
  const before = nativeKernelStatus().fusedCalls;
  tf.dispose(f());
  const fused = nativeKernelStatus().fusedCalls - before;
  disableNativeKernels();
  return fused;
}

type Pad = 'same' | 'valid' | number;

describe('native kernels match TF.js (cpu)', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));
  after(() => disableNativeKernels());

  it('conv2d forward and both gradients on random geometry', () => {
    const r = rng(1);
    for (let trial = 0; trial < 24; trial++) {
      const n = randInt(r, 1, 3);
      const h = randInt(r, 4, 11);
      const w = randInt(r, 4, 11);
      const ci = randInt(r, 1, 5);
      const co = randInt(r, 1, 6);
      const kh = randInt(r, 1, 4);
      const kw = randInt(r, 1, 4);
      const dilated = trial % 3 === 2;
      const stride: [number, number] = dilated ? [1, 1] : [randInt(r, 1, 3), randInt(r, 1, 3)];
      const dilation: [number, number] = dilated ? [randInt(r, 1, 2), 2] : [1, 1];
      const pads: Pad[] = ['same', 'valid', randInt(r, 0, 2)];
      const pad = pads[trial % 3]!;
      if ((kh - 1) * dilation[0] + 1 > h || (kw - 1) * dilation[1] + 1 > w) continue;
      const label = `conv2d n${n} ${h}x${w}x${ci}->${co} k${kh}x${kw} s${stride} d${dilation} pad ${pad}`;
      const x = randTensor([n, h, w, ci], trial);
      const filter = randTensor([kh, kw, ci, co], trial + 100);
      // TF.js sizes the width of numerically padded convs with the filter's height; where
      // that disagrees with ONNX the native path must fall back (and still match).
      const quirk = typeof pad === 'number' && (kh - 1) * dilation[0] !== (kw - 1) * dilation[1];
      compare(
        label,
        () => tf.conv2d(x as tf.Tensor4D, filter as tf.Tensor4D, stride, pad, 'NHWC', dilation),
        quirk ? 0 : 1,
      );
      if (!dilated) {
        // Gradients (TF.js differentiates conv2d only without dilation): input and filter.
        compare(
          `${label} grads`,
          () =>
            tf.grads((a: tf.Tensor, b: tf.Tensor) =>
              tf.sum(tf.sin(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad))),
            )([x, filter]),
          quirk ? 0 : 2,
        );
      }
      x.dispose();
      filter.dispose();
    }
  });

  it('filter gradient as one product per filter tap, strided and dilated', () => {
    const cases: [number[], number[], number, number, Pad][] = [
      [[2, 9, 7, 1], [3, 3, 1, 3], 1, 1, 'same'],
      [[3, 11, 8, 2], [3, 2, 2, 4], 2, 1, 'valid'],
      [[2, 10, 10, 3], [3, 3, 3, 2], 1, 2, 'same'],
      [[1, 9, 9, 1], [2, 3, 1, 2], 3, 1, 'same'],
      [[2, 12, 9, 2], [2, 2, 2, 3], 1, 3, 1],
      [[4, 10, 10, 16], [3, 3, 16, 32], 1, 1, 'same'],
      [[3, 9, 8, 24], [3, 2, 24, 8], 2, 1, 'valid'],
      [[2, 11, 11, 17], [3, 3, 17, 5], 1, 2, 2],
    ];
    cases.forEach(([xShape, filterShape, stride, dilation, pad], i) => {
      const x = randTensor(xShape, 200 + i) as tf.Tensor4D;
      const info = tf.backend_util.computeConv2DInfo(
        xShape as [number, number, number, number],
        filterShape as [number, number, number, number],
        stride,
        dilation,
        pad,
      );
      const dy = randTensor([xShape[0]!, info.outHeight, info.outWidth, filterShape[3]!], 300 + i);
      const attrs = { strides: stride, pad, dataFormat: 'NHWC', dilations: dilation, filterShape };
      compare(`taps ${xShape} ${filterShape} s${stride} d${dilation} ${pad}`, () => {
        const g = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, attrs as never);
        if (nativeKernelStatus().nativeCalls > 0)
          assert.equal(nativeKernelStatus().lastError, null);
        return g as tf.Tensor;
      });
      tf.dispose([x, dy]);
    });
  });

  it('conv2d with explicit per-side padding and a 1x1 filter', () => {
    const x = randTensor([2, 9, 7, 3], 5);
    const f = randTensor([3, 2, 3, 4], 6);
    const explicit: [[number, number], [number, number], [number, number], [number, number]] = [
      [0, 0],
      [2, 0],
      [1, 3],
      [0, 0],
    ];
    compare('explicit pads', () => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, [2, 1], explicit));
    compare('explicit pads grads', () =>
      tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, [2, 1], explicit))),
      )([x, f]),
    );
    const f1 = randTensor([1, 1, 3, 5], 7);
    compare('1x1', () => tf.conv2d(x as tf.Tensor4D, f1 as tf.Tensor4D, 1, 'valid'));
    tf.dispose([x, f, f1]);
  });

  it('conv2dTranspose (Conv2DBackpropInput) as an op', () => {
    const dy = randTensor([2, 4, 5, 6], 8);
    const f = randTensor([3, 3, 2, 6], 9);
    compare('conv2dTranspose same s2', () =>
      tf.conv2dTranspose(dy as tf.Tensor4D, f as tf.Tensor4D, [2, 8, 10, 2], 2, 'same'),
    );
    compare('conv2dTranspose valid s2 odd', () =>
      tf.conv2dTranspose(dy as tf.Tensor4D, f as tf.Tensor4D, [2, 10, 12, 2], 2, 'valid'),
    );
    tf.dispose([dy, f]);
  });

  it('fused conv2d with bias and activations', () => {
    const x = randTensor([2, 8, 8, 3], 10);
    const f = randTensor([3, 3, 3, 4], 11);
    const bias = randTensor([4], 12);
    const alpha = randTensor([4], 13);
    for (const activation of ['linear', 'relu', 'sigmoid', 'elu', 'leakyrelu', 'prelu'] as const) {
      compare(`fused conv2d ${activation}`, () =>
        tf.fused.conv2d({
          x: x as tf.Tensor4D,
          filter: f as tf.Tensor4D,
          strides: 1,
          pad: 'same',
          bias,
          activation,
          preluActivationWeights: activation === 'prelu' ? alpha : undefined,
          leakyreluAlpha: 0.3,
        }),
      );
    }
    tf.dispose([x, f, bias, alpha]);
  });

  it('depthwise conv2d forward and gradients', () => {
    const r = rng(3);
    for (let trial = 0; trial < 8; trial++) {
      const ci = randInt(r, 1, 4);
      const mult = randInt(r, 1, 3);
      const stride = trial % 2 === 0 ? 1 : 2;
      const pad: Pad = trial % 3 === 0 ? 'valid' : 'same';
      const x = randTensor([2, randInt(r, 5, 9), randInt(r, 5, 9), ci], trial + 20);
      const f = randTensor([3, randInt(r, 1, 3), ci, mult], trial + 40);
      const label = `depthwise ci${ci} m${mult} s${stride} ${pad}`;
      compare(label, () => tf.depthwiseConv2d(x as tf.Tensor4D, f as tf.Tensor4D, stride, pad));
      compare(
        `${label} grads`,
        () =>
          tf.grads((a: tf.Tensor, b: tf.Tensor) =>
            tf.sum(tf.sin(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad))),
          )([x, f]),
        3,
      );
      tf.dispose([x, f]);
    }
  });

  it('matMul: 2-D, transposes, batched with broadcasting, fused bias and activation', () => {
    const a = randTensor([5, 7], 30);
    const b = randTensor([7, 4], 31);
    const at = randTensor([7, 5], 32);
    const bt = randTensor([4, 7], 33);
    compare('mm', () => tf.matMul(a, b));
    compare('mm tA tB', () => tf.matMul(at, bt, true, true));
    const a3 = randTensor([3, 5, 7], 34);
    const b3 = randTensor([1, 7, 4], 35);
    compare('batched broadcast', () => tf.matMul(a3, b3));
    compare('batched tB', () => tf.matMul(a3, randTensor([3, 4, 7], 36), false, true));
    const bias = randTensor([4], 37);
    for (const activation of ['linear', 'relu', 'sigmoid', 'elu', 'leakyrelu'] as const) {
      compare(`fused ${activation}`, () => tf.fused.matMul({ a, b, bias, activation }));
    }
    compare('fused 2-D bias', () => tf.fused.matMul({ a, b, bias: randTensor([5, 4], 38) }));
    compare('fused batched', () => tf.fused.matMul({ a: a3, b: b3, bias, activation: 'relu' }));
    compare('matmul gradients', () =>
      tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.sin(tf.matMul(x, y))))([a, b]),
    );
    tf.dispose([a, b, at, bt, a3, b3, bias]);
  });
});

describe(
  'native element-wise, reduction and pooling-gradient kernels match TF.js (cpu)',
  {
    skip: unavailable || false,
  },
  () => {
    before(async () => onBackend('cpu'));
    after(() => disableNativeKernels());

    it('broadcasting Add, Sub, Multiply, RealDiv on large tensors', () => {
      const big = randTensor([16, 12, 12, 8], 50);
      const perChannel = randTensor([1, 1, 1, 8], 51);
      const row = randTensor([12, 1, 8], 52);
      compare('add same shape', () => tf.add(big, randTensor([16, 12, 12, 8], 53)));
      compare('sub per-channel', () => tf.sub(perChannel, big));
      compare('mul row broadcast', () => tf.mul(big, row));
      compare('div per-channel', () => tf.div(big, tf.add(tf.abs(perChannel), 0.5)));
      compare('mul scalar', () => tf.mul(big, tf.scalar(3)));
      tf.dispose([big, perChannel, row]);
    });

    it('Sum over axes, with and without keepDims', () => {
      const x = randTensor([16, 12, 12, 8], 60);
      compare('sum 0,1,2', () => tf.sum(x, [0, 1, 2]));
      compare('sum -1 keepDims', () => tf.sum(x, -1, true));
      compare('sum 1,3', () => tf.sum(x, [3, 1]));
      compare('sum all', () => tf.sum(x));
      x.dispose();
    });

    it('Tile and broadcastTo on large outputs', () => {
      const perChannel = randTensor([1, 1, 1, 8], 61);
      const small = randTensor([4, 1, 3, 8], 62);
      compare('broadcastTo per-channel', () => tf.broadcastTo(perChannel, [16, 12, 12, 8]));
      compare('tile every axis', () => tf.tile(small, [4, 12, 4, 2]));
      compare('tile one axis', () => tf.tile(small, [1, 1, 1, 400]));
      tf.dispose([perChannel, small]);
    });

    it('Relu and Step, NaN kept as NaN', () => {
      const x = tf.tidy(() => {
        const v = randTensor([16, 12, 12, 8], 65).dataSync().slice();
        v[3] = NaN;
        v[5] = 0;
        return tf.tensor(v, [16, 12, 12, 8]);
      });
      compare('relu', () => tf.relu(x));
      compare('step', () => tf.step(x, 0.25));
      compare('relu gradient', () => tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.relu(a), a)))(x));
      x.dispose();
    });

    it("hides ReluGrad on cpu while on (relu's gradient takes memoized Step and Multiply)", () => {
      assert.ok(tf.getKernel(RELU_GRAD, 'cpu') != null);
      enableNativeKernels({ threads: 1 });
      assert.equal(tf.getKernel(RELU_GRAD, 'cpu'), undefined);
      disableNativeKernels();
      assert.ok(tf.getKernel(RELU_GRAD, 'cpu') != null);
    });

    it('Step on the same input twice shares its output, safely across disposal', () => {
      const x = randTensor([16, 12, 12, 8], 66);
      const expected = tf.tidy(() => tf.step(x).dataSync().slice());
      enableNativeKernels({ threads: 1 });
      const before = tf.memory();
      const first = tf.step(x);
      const callsAfterFirst = nativeKernelStatus().nativeCalls;
      const second = tf.step(x);
      assert.equal(nativeKernelStatus().nativeCalls, callsAfterFirst + 1);
      assert.equal(tf.memory().numDataBuffers, before.numDataBuffers + 1, 'one shared buffer');
      first.dispose();
      assert.deepEqual(second.dataSync(), expected, 'the shared output outlives the first');
      second.dispose();
      assert.equal(tf.memory().numDataBuffers, before.numDataBuffers, 'freed with the last');
      const third = tf.step(x); // the memoized output is gone: computed anew
      assert.deepEqual(third.dataSync(), expected);
      const other = tf.step(x, 0.5); // another alpha is another result
      assert.notDeepEqual(other.dataSync(), expected);
      tf.dispose([third, other, x]);
      disableNativeKernels();
    });

    it('MaxPool and AvgPool on random geometry', () => {
      const r = rng(11);
      for (let trial = 0; trial < 10; trial++) {
        const f: [number, number] = [randInt(r, 1, 3), randInt(r, 1, 3)];
        const s: [number, number] = [randInt(r, 1, 3), randInt(r, 1, 3)];
        const pad: Pad = trial % 2 === 0 ? 'valid' : 'same';
        const x = randTensor([2, randInt(r, 4, 9), randInt(r, 4, 9), 3], trial + 90);
        compare(`maxPool f${f} s${s} ${pad}`, () => tf.maxPool(x as tf.Tensor4D, f, s, pad));
        compare(`avgPool f${f} s${s} ${pad}`, () => tf.avgPool(x as tf.Tensor4D, f, s, pad));
        x.dispose();
      }
    });

    it('MaxPoolGrad on random geometry, with ties', () => {
      const r = rng(7);
      for (let trial = 0; trial < 8; trial++) {
        const f = randInt(r, 1, 3);
        const s = randInt(r, 1, 3);
        const pad: Pad = trial % 2 === 0 ? 'valid' : 'same';
        // Rounded inputs make ties common, so the tie rule is exercised too.
        const x = tf.tidy(() => tf.round(tf.mul(randTensor([2, 7 + trial, 9, 3], trial + 70), 2)));
        compare(`maxPool grad f${f} s${s} ${pad}`, () =>
          tf.grad((a: tf.Tensor) => tf.sum(tf.sin(tf.maxPool(a as tf.Tensor4D, f, s, pad))))(x),
        );
        x.dispose();
      }
    });

    it('relu then max pool: the gradient is bit for bit TF.js, masks with NaN included', () => {
      const bits = (t: tf.Tensor) =>
        Array.from(new Uint32Array(Float32Array.from(t.dataSync()).buffer));
      for (const withNaN of [false, true]) {
        const x = tf.tidy(() => {
          const v = randTensor([4, 16, 16, 16], 81).dataSync().slice();
          v[7] = -0;
          v[100] = 0;
          if (withNaN) v[333] = NaN;
          return tf.tensor(v, [4, 16, 16, 16]);
        });
        // Above the native size threshold, so that Step and the fused product run natively.
        const w = randTensor([4, 8, 8, 16], 82);
        const f = (a: tf.Tensor) =>
          tf.sum(tf.mul(tf.maxPool(tf.relu(a) as tf.Tensor4D, 2, 2, 'valid'), w));
        disableNativeKernels();
        const expected = tf.tidy(() => bits(tf.grad(f)(x)));
        enableNativeKernels({ threads: 1 });
        const before = tf.memory().numTensors;
        const got = tf.tidy(() => bits(tf.grad(f)(x)));
        // Fused only where the mask is all 0 and 1 (a NaN in x makes a NaN in the mask).
        assert.equal(nativeKernelStatus().fusedCalls > 0, !withNaN);
        assert.equal(tf.memory().numTensors, before);
        assert.deepEqual(got, expected, `withNaN ${withNaN}`);
        disableNativeKernels();
        tf.dispose([x, w]);
      }
    });

    it('a conv-bias-relu-pool HVP: the deferred broadcast and masked product agree with TF.js', () => {
      // Above the element-wise threshold, so that the masks are native 0/1 masks.
      const x = randTensor([8, 16, 16, 1], 101);
      const filter = tf.variable(randTensor([3, 3, 1, 16], 102));
      const bias = tf.variable(randTensor([16], 103));
      const dense = tf.variable(randTensor([8 * 8 * 16, 3], 104));
      const vars = [filter, bias, dense];
      const vectors = vars.map((v, i) => randTensor(v.shape, 110 + i));
      const loss = () =>
        tf.tidy(() => {
          const h = tf.relu(
            tf.add(tf.conv2d(x as tf.Tensor4D, filter as tf.Tensor4D, 1, 'same'), bias),
          );
          const p = tf.reshape(tf.maxPool(h as tf.Tensor4D, 2, 2, 'valid'), [8, -1]);
          return tf.sum(tf.square(tf.matMul(p, dense))) as tf.Scalar;
        });
      const run = () => {
        const { loss: l, grads, hvp } = gradAndHvp(loss, vars, vectors);
        return [l, ...grads, ...hvp];
      };
      compareSecondRun('conv-bias-relu-pool HVP', run);
      // Per run: conv + bias (forward), the relu-pool product (gradient), and in the sweep conv
      // + broadcast bias, the relu-pool product again, the masked product read at the winners.
      assert.equal(fusedCallsOnSecondRun(run), 5);
      tf.dispose([x, ...vars, ...vectors]);
    });

    it('the sum of two deferred convs of one geometry is one conv of the concatenations', () => {
      const xs = [randTensor([5, 9, 8, 3], 121), randTensor([5, 9, 8, 3], 122)] as tf.Tensor4D[];
      const fs = [randTensor([3, 3, 3, 4], 123), randTensor([3, 3, 3, 4], 124)] as tf.Tensor4D[];
      const other = randTensor([1, 1, 3, 4], 125) as tf.Tensor4D; // another geometry: no fusion
      const sums = () => [
        tf.add(tf.conv2d(xs[0]!, fs[0]!, 1, 'same'), tf.conv2d(xs[1]!, fs[1]!, 1, 'same')),
        tf.add(tf.conv2d(xs[0]!, fs[0]!, 1, 'same'), tf.conv2d(xs[1]!, other, 1, 'same')),
      ];
      compareSecondRun('two convs summed', sums);
      assert.equal(fusedCallsOnSecondRun(sums), 1);
      tf.dispose([...xs, ...fs, other]);
    });

    it('conv2d then a bias add: one Conv with the bias; the conv output still reads right', () => {
      const x = randTensor([6, 9, 8, 3], 91) as tf.Tensor4D;
      const filter = randTensor([3, 3, 3, 5], 92) as tf.Tensor4D;
      const bias = randTensor([5], 93);
      const layer = () => {
        const conv = tf.conv2d(x, filter, 1, 'same');
        return [tf.add(conv, bias), tf.add(bias, conv), conv];
      };
      // Twice: the first call compiles the conv's graph (run at once), the second defers it.
      compare('conv2d + bias, first', layer);
      compare('conv2d + bias, deferred', () => {
        tf.dispose(layer());
        return layer();
      });
      enableNativeKernels({ threads: 1 });
      const backendData = () => (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
      const before = { tensors: tf.memory().numTensors, data: backendData() };
      for (let i = 0; i < 5; i++) tf.tidy(() => void tf.add(tf.conv2d(x, filter, 1, 'same'), bias));
      assert.equal(nativeKernelStatus().fusedCalls, 4, 'every add after the first compile');
      assert.equal(tf.memory().numTensors, before.tensors);
      assert.equal(backendData(), before.data);
      disableNativeKernels();
      tf.dispose([x, filter, bias]);
    });

    it('a deferred MaxPoolGrad output: read late, read after dy went, or dropped unread', () => {
      const x = randTensor([3, 8, 6, 4], 83) as tf.Tensor4D;
      const attrs = { filterSize: 2, strides: 2, pad: 'valid' as const };
      const run = (dy: tf.Tensor, y: tf.Tensor) =>
        tf.engine().runKernel('MaxPoolGrad', { dy, input: x, output: y }, attrs) as tf.Tensor;
      const y = tf.maxPool(x, 2, 2, 'valid');
      const expected = tf.tidy(() => run(randTensor(y.shape, 84), y).dataSync().slice());
      enableNativeKernels({ threads: 1 });
      const backendData = () => (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
      const before = { tensors: tf.memory().numTensors, data: backendData() };
      const dy = randTensor(y.shape, 84);
      const dx = run(dy, y);
      dy.dispose(); // the deferred output keeps what it needs
      assert.deepEqual(dx.dataSync(), expected);
      dx.dispose();
      // Still unread when the native kernels go: computed on the way out, read fine after.
      const dy2 = randTensor(y.shape, 84);
      const late = run(dy2, y);
      disableNativeKernels();
      assert.deepEqual(late.dataSync(), expected);
      tf.dispose([late, dy2]);
      enableNativeKernels({ threads: 1 });
      for (let i = 0; i < 20; i++) {
        tf.tidy(() => {
          run(tf.onesLike(y), y); // never read
        });
      }
      assert.equal(tf.memory().numTensors, before.tensors);
      assert.equal(backendData(), before.data);
      disableNativeKernels();
      tf.dispose([x, y]);
    });

    it('MaxPoolGrad reuses its window winners per input, and only for the same geometry', () => {
      // Ties (rounded values) and a view of the same data under another shape.
      const x = tf.tidy(() => tf.round(tf.mul(randTensor([2, 8, 6, 3], 75), 2))) as tf.Tensor4D;
      const view = tf.reshape(x, [2, 6, 8, 3]) as tf.Tensor4D;
      const grads = (input: tf.Tensor4D, f: number, s: number, pad: Pad, seed: number) => {
        const y = tf.maxPool(input, f, s, pad);
        const dy = randTensor(y.shape, seed);
        return tf
          .engine()
          .runKernel(
            'MaxPoolGrad',
            { dy, input, output: y },
            { filterSize: f, strides: s, pad },
          ) as tf.Tensor;
      };
      const transposed = (input: tf.Tensor4D, f: number, s: number, pad: Pad, seed: number) =>
        tf
          .engine()
          .runKernel(
            MAX_POOL_GRAD_TRANSPOSE,
            { dxBar: randTensor(input.shape, seed), input, output: tf.maxPool(input, f, s, pad) },
            { filterSize: f, strides: s, pad },
          ) as tf.Tensor;
      compare('maxPoolGradTranspose', () => [
        transposed(x, 2, 2, 'valid', 6),
        grads(x, 2, 2, 'valid', 7),
        transposed(x, 3, 2, 'same', 8),
        transposed(view, 2, 2, 'valid', 9),
      ]);
      compare('maxPoolGrad reused', () => [
        grads(x, 2, 2, 'valid', 1),
        grads(x, 2, 2, 'valid', 2),
        grads(x, 3, 1, 'same', 3),
        grads(view, 2, 2, 'valid', 4),
        grads(x, 2, 2, 'valid', 5),
      ]);
      tf.dispose([x, view]);
    });

    it('small tensors, int32 and NCHW stay with TF.js and still agree', () => {
      const a = randTensor([3, 4], 80);
      compare('small add', () => tf.add(a, a), 0);
      compare(
        'int32 add',
        () => tf.add(tf.ones([128, 128], 'int32'), tf.ones([128, 128], 'int32')),
        0,
      );
      a.dispose();
    });
  },
);

describe('native kernels on the wasm backend', { skip: unavailable || false }, () => {
  after(async () => {
    disableNativeKernels();
    await onBackend('cpu');
  });

  it('conv, conv + bias, its gradients and a max pool agree with wasm, run twice', async () => {
    await onBackend('wasm');
    const x = randTensor([4, 12, 10, 3], 131) as tf.Tensor4D;
    const filter = randTensor([3, 3, 3, 8], 132) as tf.Tensor4D;
    const bias = randTensor([8], 133);
    const f = (w: tf.Tensor) =>
      tf.sum(
        tf.maxPool(tf.relu(tf.add(tf.conv2d(x, w as tf.Tensor4D, 1, 'same'), bias)), 2, 2, 'valid'),
      );
    const run = () =>
      tf.tidy(() => [f(filter), tf.grad(f)(filter)].map((t) => t.dataSync().slice()));
    const expected = run();
    const status = enableNativeKernels({ threads: 1, backends: ['wasm'] });
    assert.equal(status.enabled, true, status.reason);
    for (let pass = 0; pass < 2; pass++) {
      const got = run();
      got.forEach((values, i) => {
        const scale = Math.max(1, ...expected[i]!.map(Math.abs));
        values.forEach((v, j) =>
          assert.ok(
            Math.abs(v - expected[i]![j]!) <= 1e-4 * scale,
            `pass ${pass}, output ${i}[${j}]`,
          ),
        );
      });
    }
    const stats = nativeKernelStatus();
    assert.ok(stats.nativeCalls > 0, 'the native kernels ran');
    assert.equal(stats.lastError, null);
    disableNativeKernels();
    tf.dispose([x, filter, bias]);
  });
});

describe('native kernels: fallback, status and memory (cpu)', () => {
  before(async () => onBackend('cpu'));
  after(() => {
    reloadOnnxRuntimeForTesting();
    disableNativeKernels();
  });

  it('without onnxruntime-node, enabling changes nothing and says why', () => {
    const stock = tf.getKernel('Conv2D', 'cpu');
    reloadOnnxRuntimeForTesting('onnxruntime-node-that-is-not-installed');
    const status = enableNativeKernels();
    assert.equal(status.enabled, false);
    assert.match(status.reason, /onnxruntime-node could not be loaded/);
    assert.equal(tf.getKernel('Conv2D', 'cpu'), stock);
    const x = randTensor([1, 5, 5, 2], 90);
    const f = randTensor([3, 3, 2, 2], 91);
    const y = tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, 'same');
    assert.deepEqual(y.shape, [1, 5, 5, 2]);
    tf.dispose([x, f, y]);
    reloadOnnxRuntimeForTesting();
  });

  it(
    'disable restores the TF.js kernels; bad options are named',
    { skip: unavailable || false },
    () => {
      const stock = tf.getKernel('BatchMatMul', 'cpu');
      const status = enableNativeKernels();
      assert.ok(status.kernels.includes('Conv2DBackpropFilter'));
      assert.notEqual(tf.getKernel('BatchMatMul', 'cpu'), stock);
      disableNativeKernels();
      assert.equal(tf.getKernel('BatchMatMul', 'cpu'), stock);
      assert.throws(
        () => enableNativeKernels({ threads: 0 }),
        /'threads' must be a positive integer/,
      );
      assert.throws(() => enableNativeKernels({ kernels: ['Conv3D'] }), /unknown kernel 'Conv3D'/);
      assert.throws(() => enableNativeKernels({ backends: ['webgl'] }), /backend 'webgl'/);
    },
  );

  it(
    'a training loop leaks no tensors, and the graph cache stays bounded',
    {
      skip: unavailable || false,
    },
    () => {
      // Op by op (no step graphs): the kernel calls are what fill the cache.
      enableNativeKernels({ cacheSize: 8, stepGraphs: false });
      const w = tf.variable(randTensor([3, 3, 2, 4], 100));
      const d = tf.variable(randTensor([4 * 6 * 6, 3], 101));
      const optimizer = tf.train.sgd(0.01);
      const step = (size: number) =>
        optimizer.minimize(() => {
          const x = tf.randomUniform([2, size, size, 2]);
          const h = tf.relu(tf.conv2d(x as tf.Tensor4D, w as unknown as tf.Tensor4D, 1, 'same'));
          const pooled = tf.image.resizeBilinear(h as tf.Tensor4D, [6, 6]);
          return tf.mean(tf.square(tf.matMul(tf.reshape(pooled, [2, -1]), d)));
        });
      for (let i = 0; i < 20; i++) step(6 + (i % 12)); // 12 shapes: more than the cache holds
      const tensors = tf.memory().numTensors;
      for (let i = 0; i < 1000; i++) step(6 + (i % 12));
      assert.equal(tf.memory().numTensors, tensors);
      const s = nativeKernelStatus();
      assert.ok(s.cachedGraphs <= 8, `cache holds ${s.cachedGraphs} graphs`);
      assert.ok(s.nativeCalls > 3000, `native calls ${s.nativeCalls}`);
      optimizer.dispose();
      tf.dispose([w, d]);
    },
  );
});
