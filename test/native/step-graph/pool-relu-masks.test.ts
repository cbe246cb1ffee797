/**
 * pool-relu-masks.ts: relu's mask multiplied at max pooling's winners. Pinned: where it folds
 * (the transposes' products; with ADAHESSIAN_POOL_MASKS=2 the second MaxPoolGrad-then-mask of a
 * relu) and where not (a mask of another tensor, a product read twice, another factor, level
 * 0); the transposes bit for bit on special values (NaN, -0 and dead windows in z,
 * NaN, Infinity and -0 in t), which also pins ONNX Runtime's Relu keeping NaN; level 2's only
 * differences (signs of zero, and +0 for NaN where z is NaN off the winners); and a small CNN's
 * AdaHessian step graph: the same bits as without the rewrite.
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
if (unavailable !== '') console.log(`# pool-relu-masks test skipped: ${unavailable}`);

/** `build()` with ADAHESSIAN_POOL_MASKS=`level` (undefined: unset, the default). */
const atLevel = <T>(level: string | undefined, build: () => T): T =>
  withEnv({ ADAHESSIAN_POOL_MASKS: level }, build);

const ATTRS = { filterSize: 2, strides: 2, pad: 'valid' } as tf.NamedAttrMap;
const SHAPE: [number, number, number, number] = [2, 4, 6, 3];

/** Products of masks read by a gather (the transposes' form before the rewrite). */
const gatheredProducts = (built: BuiltGraph) => {
  const producer = new Map(built.graph.nodes.flatMap((n) => n.outputs.map((o) => [o, n])));
  return built.graph.nodes.filter((n) => {
    if (n.opType !== 'GatherElements') return false;
    const view = producer.get(n.inputs[0]!);
    return producer.get(view?.inputs[0] ?? '')?.opType === 'Mul';
  }).length;
};

/**
 * z -> relu -> 2x2 pool; outputs: the gradient's MaxPoolGrad(dy1) * Step(m), the sweep's
 * transpose of t * Step(m) and MaxPoolGrad(dy2) * Step(m) (m = z, or another tensor), built at
 * levels 0, 1 and 2, run once each.
 */
function poolGraphs(z: tf.Tensor, t: tf.Tensor, options: { maskOf?: tf.Tensor } = {}) {
  const pooledShape = [SHAPE[0], SHAPE[1] / 2, SHAPE[2] / 2, SHAPE[3]];
  const [dy1, dy2] = [2, 3].map((seed) => tf.randomNormal(pooledShape, 0, 1, 'float32', seed));
  const { result, recording, refOf } = record(() =>
    tf.tidy(() => {
      const x = tf.relu(z);
      const output = tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid');
      const mask = tf.step(options.maskOf ?? z);
      const grad = (dy: tf.Tensor) =>
        tf.engine().runKernel('MaxPoolGrad', { dy, input: x, output }, ATTRS) as tf.Tensor;
      const dxBar = tf.mul(t, mask);
      const transpose = tf
        .engine()
        .runKernel(MAX_POOL_GRAD_TRANSPOSE, { dxBar, input: x, output }, ATTRS) as tf.Tensor;
      return [tf.mul(grad(dy1!), mask), transpose, tf.mul(grad(dy2!), mask)];
    }),
  );
  const outputs = result.map((r) => ({ ref: refOf(r)!, shape: [...r.shape] }));
  const levels = ['0', '1', '2'].map((level) => {
    const built = atLevel(level, () => buildStepGraph(recording, outputs));
    return { built, values: runBuiltGraph(built, recording)[0]! };
  });
  tf.dispose([...result, dy1!, dy2!]);
  return levels;
}

function randomValues(seed: number): Float32Array {
  const r = tf.randomNormal(SHAPE, 0, 1, 'float32', seed);
  const values = r.dataSync().slice() as Float32Array;
  r.dispose();
  return values;
}

/** z with NaN (a lone one off the winners, a whole window), -0, dead windows and ties. */
function specialZ(): tf.Tensor {
  const z = randomValues(7);
  const at = (n: number, h: number, w: number, c: number) =>
    ((n * SHAPE[1] + h) * SHAPE[2] + w) * SHAPE[3] + c;
  z[at(0, 0, 1, 0)] = NaN; // beside others: no winner there
  for (const [h, w] of [
    [2, 2],
    [2, 3],
    [3, 2],
    [3, 3],
  ]) {
    z[at(0, h!, w!, 1)] = NaN; // a window of NaN: no winner at all
    z[at(1, h!, w!, 0)] = -Math.abs(z[at(1, h!, w!, 0)]!) - 0.1; // dead: relu 0 everywhere
    z[at(1, h!, w!, 2)] = 0.5; // a four-way tie
  }
  z[at(1, 0, 0, 1)] = -0; // a dead window whose first element is -0
  z[at(1, 0, 1, 1)] = -1;
  z[at(1, 1, 0, 1)] = -2;
  z[at(1, 1, 1, 1)] = -0;
  return tf.tensor(z, SHAPE);
}

/** t with NaN, Infinity and -0 at winners and elsewhere. */
function specialT(): tf.Tensor {
  const t = randomValues(8);
  [0, 5, 17, 40, 77, 101, 130].forEach((i, k) => (t[i] = [NaN, Infinity, -0, -Infinity][k % 4]!));
  return tf.tensor(t, SHAPE);
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

describe(
  'pool-relu-masks.ts: relu masks at max pooling winners',
  { skip: unavailable || false },
  () => {
    it('folds the transposes (level 1, exact bits) and, at level 2, the second MaxPoolGrad', async () => {
      await onBackend('cpu');
      const before = tf.memory().numTensors;
      const [z, t] = [specialZ(), specialT()];
      const [off, exact, both] = poolGraphs(z, t);
      assert.equal(gatheredProducts(off!.built), 1);
      assert.equal(gatheredProducts(exact!.built), 0);
      // Products with the full-size mask (a Div's output): level 2 leaves the gradient's alone.
      const maskProducts = (built: BuiltGraph) => {
        const divs = new Set(
          built.graph.nodes.filter((n) => n.opType === 'Div').flatMap((n) => n.outputs),
        );
        return built.graph.nodes.filter(
          (n) => n.opType === 'Mul' && n.inputs.some((i) => divs.has(i)),
        ).length;
      };
      assert.deepEqual(
        [off, exact, both].map((l) => maskProducts(l!.built)),
        [3, 2, 1],
      );

      off!.values.forEach((want, k) => {
        assert.deepEqual(bits(exact!.values[k]!), bits(want), `level 1, output ${k}`);
      });
      // Level 2 differs only in output 2, only by the sign of a zero, or +0 where z is NaN.
      const zs = z.dataSync();
      let signs = 0;
      let nans = 0;
      off!.values.forEach((want, k) => {
        const got = both!.values[k]!;
        want.forEach((w, i) => {
          const g = got[i]!;
          if (Object.is(g, w)) return;
          assert.equal(k, 2, `output ${k}, element ${i}: ${g} against ${w}`);
          if (g === 0 && w === 0) signs++;
          else {
            assert.ok(
              Number.isNaN(w) && Object.is(g, 0) && Number.isNaN(zs[i]!),
              `${i}: ${g}, ${w}`,
            );
            nans++;
          }
        });
      });
      assert.ok(signs > 0 && nans > 0, `${signs} signs of zero, ${nans} NaNs`);
      tf.dispose([z, t]);
      assert.equal(tf.memory().numTensors, before);
    });

    it('leaves other factors, masks of other tensors and products read twice alone', async () => {
      await onBackend('cpu');
      const before = tf.memory().numTensors;
      const z = specialZ();
      const other = tf.randomNormal(SHAPE, 0, 1, 'float32', 9);
      // The mask of another tensor than the pool's relu input: no winners tell it.
      const [, foreign] = poolGraphs(z, other, { maskOf: other });
      assert.equal(gatheredProducts(foreign!.built), 1);

      // A factor that is no relu mask, and a product also returned.
      const { result, recording, refOf } = record(() =>
        tf.tidy(() => {
          const x = tf.relu(z);
          const output = tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid');
          const transposeOf = (dxBar: tf.Tensor) =>
            tf.engine().runKernel(MAX_POOL_GRAD_TRANSPOSE, { dxBar, input: x, output }, ATTRS);
          const shared = tf.mul(other, tf.step(z));
          return [
            transposeOf(tf.mul(other, tf.sigmoid(z))) as tf.Tensor,
            transposeOf(shared) as tf.Tensor,
            shared,
          ];
        }),
      );
      const outputs = result.map((r) => ({ ref: refOf(r)!, shape: [...r.shape] }));
      const built = buildStepGraph(recording, outputs);
      assert.equal(gatheredProducts(built), 2);

      tf.dispose([...result, z, other]);
      assert.equal(tf.memory().numTensors, before);
    });

    it("a small CNN's AdaHessian step graph: both folds by default; level 1 bit for bit, 2 up to signs of zero", async () => {
      await onBackend('cpu');
      const before = tf.memory().numTensors;
      const { recording, outputs, dispose } = recordSmallCnnStep();
      const [plain, exact] = ['0', '1'].map((level) =>
        atLevel(level, () => buildStepGraph(recording, outputs)),
      );
      const byDefault = atLevel(undefined, () => buildStepGraph(recording, outputs));
      assert.deepEqual(
        [plain, exact, byDefault].map((b) => gatheredProducts(b!)),
        [2, 0, 0],
      );
      // The sweep's two MaxPoolGrads: the mask at the winners (4 nodes) and a pooled product
      // each, their full-size products gone.
      assert.equal(byDefault.nodeCount, exact!.nodeCount + 8);
      const [want, got, gotByDefault] = [plain!, exact!, byDefault].map(
        (b) => runBuiltGraph(b, recording)[0]!,
      );
      want!.forEach((w, k) => {
        assert.deepEqual(bits(got![k]!), bits(w), `level 1, output ${k}`);
        w.forEach((v, i) => {
          const g = gotByDefault![k]![i]!;
          assert.ok(
            Object.is(g, v) || (g === 0 && v === 0),
            `output ${k}, ${i}: ${g} against ${v}`,
          );
        });
      });
      dispose();
      assert.equal(tf.memory().numTensors, before);
    });
  },
);
