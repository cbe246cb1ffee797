/**
 * Second-order coverage of dense, activation, normalization, embedding, recurrent,
 * attention, loss and tf.layers cases (src/autodiff/cases/nn.ts) against finite differences.
 *
 * Run as a child process with ADAHESSIAN_STOCK_FIRST_ORDER=1, this file instead prints the
 * first-order gradients of every case computed by stock TensorFlow.js (adahessian never
 * imported), which the parent compares with its own to show the registrations leave first
 * order unchanged.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { useBackend, type BackendName } from '../../src/backends.js';
// Neither module installs adahessian (only src/index.ts and gradAndHvp do).
import { nnCases } from '../../src/autodiff/cases/nn.js';
import type { SecondOrderCase } from '../../src/autodiff/cases/types.js';
import { TEST_BACKENDS } from '../helpers.js';

const STOCK_CHILD = process.env.ADAHESSIAN_STOCK_FIRST_ORDER === '1';
const STOCK_MARKER = 'STOCK_FIRST_ORDER_JSON ';

/** Gradient of each case's loss at its initial point, or the error it raised. */
type FirstOrder = Record<string, number[][] | { error: string }>;

/** Cases where stock TF.js itself computes a wrong first-order result that we fix. */
const STOCK_BUGS: Record<string, string[]> = {
  wasm: ['tf.fused.matMul, every transpose flag and rank 3, bias'],
};

/** Cases whose gradient we compute with the same terms summed in another order. */
const REORDERED_SUMS = ['tf.layers layerNormalization'];

function assertClose(got: number[][], expected: number[][], rel: number, what: string): void {
  assert.equal(got.length, expected.length, what);
  got.forEach((g, i) => {
    const e = expected[i]!;
    const scale = Math.max(...e.map(Math.abs), 1e-30);
    const worst = Math.max(...g.map((v, j) => Math.abs(v - e[j]!)));
    assert.ok(worst <= rel * scale, `${what}: gradient ${i} differs by ${worst} (scale ${scale})`);
  });
}

function firstOrderOfCases(backend: string): FirstOrder {
  const out: FirstOrder = {};
  for (const c of nnCases) {
    if (c.skipBackends?.includes(backend)) continue;
    const p = c.build();
    try {
      const { value, grads } = tf.variableGrads(p.lossFn, p.vars);
      out[c.name] = p.vars.map((v) => Array.from(grads[v.name]!.dataSync()));
      tf.dispose([value, ...Object.values(grads)]);
    } catch (e) {
      out[c.name] = { error: e instanceof Error ? e.message : String(e) };
    } finally {
      p.dispose();
    }
  }
  return out;
}

if (STOCK_CHILD) {
  const result: Record<string, FirstOrder> = {};
  for (const backend of (process.env.ADAHESSIAN_TEST_BACKENDS ?? 'cpu').split(',')) {
    await useBackend(backend as BackendName);
    result[backend] = firstOrderOfCases(backend);
  }
  process.stdout.write(`\n${STOCK_MARKER}${JSON.stringify(result)}\n`);
} else {
  await registerTests();
}

async function registerTests(): Promise<void> {
  const ah = await import('../../src/index.js');
  const { observeSecondOrderKernels } = await import('../../src/autodiff/verified-kernels.js');
  const { NN_VERIFIED_KERNELS, registerNnGradients } =
    await import('../../src/autodiff/gradients/nn.js');
  const { ACTIVATION_VERIFIED_KERNELS, registerActivationGradients } =
    await import('../../src/autodiff/gradients/activations.js');
  const { trainableVariables } = await import('../../src/autodiff/cases/nn.js');

  /** Kernel names seen on the path of any case, over all backends. */
  const seenOnPath = new Set<string>();

  for (const backend of TEST_BACKENDS) {
    describe(`nn second-order cases on ${backend}`, () => {
      before(() => useBackend(backend));

      for (const c of nnCases) {
        const skipped = (c as SecondOrderCase).skipBackends?.includes(backend) ?? false;
        it(c.name, { skip: skipped && `not claimed on ${backend}` }, (t) => {
          const before = tf.memory().numTensors;
          const p = c.build();
          const stop = observeSecondOrderKernels((names) =>
            names.forEach((n) => seenOnPath.add(n)),
          );
          try {
            const r = ah.compareHvpWithFiniteDifferences(p.lossFn, p.vars);
            t.diagnostic(
              `${backend} relError ${r.relError.toExponential(1)} (eps ${r.epsilon}, ` +
                `|Hv| ${r.hvpNorm.toExponential(1)})`,
            );
            assert.ok(
              r.relError <= ah.DEFAULT_FD_TOLERANCE,
              `relError ${r.relError} > ${ah.DEFAULT_FD_TOLERANCE}`,
            );
            // The head must make the Hessian non-trivial, or the check proves nothing.
            assert.ok(r.hvpNorm > 1e-2, `|Hv| = ${r.hvpNorm} is (near) zero`);
          } finally {
            stop();
            p.dispose();
          }
          assert.equal(tf.memory().numTensors, before, 'the case leaks tensors');
        });
      }

      it('raises UnsupportedSecondOrderError naming an unverified op, and leaks nothing', () => {
        const w = tf.variable(tf.randomNormal([4, 3], 0, 1, 'float32', 1));
        const x = tf.randomNormal([5, 4], 0, 1, 'float32', 2);
        const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 1, 0], 'int32'), 3);
        const v = tf.onesLike(w);
        const expectUnsupported = (lossFn: () => tf.Scalar, kernelName: string) => {
          const before = tf.memory().numTensors;
          assert.throws(
            () => ah.gradAndHvp(lossFn, [w], [v]),
            (e: Error) =>
              e instanceof ah.UnsupportedSecondOrderError &&
              e.kernelName === kernelName &&
              e.message.includes(`'${kernelName}'`),
          );
          assert.equal(tf.memory().numTensors, before);
        };
        // Keeps its softmax off the tape: its Hessian would be wrong, so it must refuse.
        expectUnsupported(
          () => tf.losses.softmaxCrossEntropy(labels, tf.matMul(x, w)) as tf.Scalar,
          'softmaxCrossEntropy__op',
        );
        expectUnsupported(() => tf.sum(tf.sin(tf.cumsum(tf.matMul(x, w), 1))), 'Cumsum');
        tf.dispose([w, x, labels, v]);
      });

      it('a seeded tf.layers dropout draws the same mask on every call (an unseeded one does not)', () => {
        const x = tf.ones([8, 16]);
        const apply = (layer: tf.layers.Layer) =>
          tf.tidy(() => Array.from((layer.apply(x, { training: true }) as tf.Tensor).dataSync()));
        const seededLayer = tf.layers.dropout({ rate: 0.4, seed: 17 });
        const first = apply(seededLayer);
        assert.deepEqual(apply(seededLayer), first);
        assert.ok(first.some((e) => e === 0) && first.some((e) => e !== 0), 'a real mask');
        const unseeded = tf.layers.dropout({ rate: 0.4 });
        assert.notDeepEqual(apply(unseeded), apply(unseeded));
        x.dispose();
      });

      it('trainableVariables gives the tf.Variables behind a model, in trainableWeights order', () => {
        const model = tf.sequential({
          layers: [tf.layers.dense({ inputShape: [3], units: 2 }), tf.layers.batchNormalization()],
        });
        const vars = trainableVariables(model);
        assert.equal(vars.length, 4); // kernel, bias, gamma, beta (moving stats not trainable)
        vars.forEach((v, i) => {
          assert.ok(v instanceof tf.Variable);
          assert.equal(v, model.trainableWeights[i]!.read());
        });
        model.dispose();
      });
    });
  }

  describe('nn gradient registrations', () => {
    it('every kernel the nn and activation modules mark verified is on some case path', () => {
      // Meaningful once the per-backend cases above have run (node:test runs in order).
      const claimed = [...NN_VERIFIED_KERNELS, ...ACTIVATION_VERIFIED_KERNELS];
      const unexercised = claimed.filter((k) => !seenOnPath.has(k));
      assert.deepEqual(unexercised, []);
      for (const k of claimed) assert.ok(ah.isSecondOrderVerified(k), k);
    });

    it('registration is idempotent', () => {
      const before = ah.secondOrderVerifiedKernels();
      registerNnGradients();
      registerActivationGradients();
      assert.deepEqual(ah.secondOrderVerifiedKernels(), before);
    });

    it('leaves first-order gradients bit-identical to stock TensorFlow.js', async () => {
      const child = spawnSync(
        process.execPath,
        ['--import', 'tsx', fileURLToPath(import.meta.url)],
        {
          env: {
            ...process.env,
            ADAHESSIAN_STOCK_FIRST_ORDER: '1',
            ADAHESSIAN_TEST_BACKENDS: TEST_BACKENDS.join(','),
          },
          encoding: 'utf8',
          maxBuffer: 64 * 1024 * 1024,
        },
      );
      assert.equal(child.status, 0, child.stderr);
      const line = child.stdout.split('\n').find((l) => l.startsWith(STOCK_MARKER));
      assert.ok(line != null, `no result from the stock child: ${child.stdout.slice(-500)}`);
      const stock = JSON.parse(line.slice(STOCK_MARKER.length)) as Record<string, FirstOrder>;
      for (const backend of TEST_BACKENDS) {
        await useBackend(backend);
        const ours = firstOrderOfCases(backend);
        const stockFailed: string[] = [];
        for (const [name, expected] of Object.entries(stock[backend]!)) {
          const got = ours[name]!;
          assert.ok(!('error' in got), `${backend} ${name}: ${JSON.stringify(got)}`);
          if ('error' in expected) {
            // Stock cannot differentiate through a comparison; we give the zero it has.
            assert.match(expected.error, /gradient function not found/, `${backend} ${name}`);
            stockFailed.push(name);
            continue;
          }
          if (STOCK_BUGS[backend]?.includes(name)) {
            // Stock is wrong here (see src/kernels/fused-mat-mul.ts); ours must differ from it.
            assert.notDeepEqual(got, expected, `${backend} ${name}: stock bug no longer seen`);
            continue;
          }
          if (REORDERED_SUMS.includes(name)) {
            // Same gradient, summed in another order (our Tile gradient): float32 rounding only.
            assertClose(got as number[][], expected as number[][], 1e-6, `${backend} ${name}`);
            continue;
          }
          assert.deepEqual(got, expected, `${backend} ${name}: first-order gradient changed`);
        }
        assert.deepEqual(stockFailed, ['comparison and logical ops inside tf.where']);
        assert.ok(Object.keys(stock[backend]!).length >= nnCases.length - 3, 'cases compared');
      }
    });
  });
}
