import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { HessianAnalyzer, HessianOperator } from '../../src/analysis/index.js';
import { meanSquaredError } from '../../src/losses.js';
import { symmetricEigen } from '../../src/estimators/index.js';
import { maxAbs, maxAbsDiff, onBackend, TEST_BACKENDS } from '../helpers.js';
import { relError, spectrum } from '../estimators/problems.js';
import { assembleHessian, leastSquares, smallMlp } from './fixtures.js';

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

/** Rows of uneven batches cut from one dataset of 15 examples. */
function unevenBatches(seed: number) {
  const x = tf.randomNormal([15, 3], 0, 1, 'float32', seed);
  const y = tf.randomNormal([15, 2], 0, 1, 'float32', seed + 1);
  const sizes = [5, 3, 7];
  let start = 0;
  const batches = sizes.map((size) => {
    const b = { x: x.slice(start, size), y: y.slice(start, size) };
    start += size;
    return b;
  });
  return {
    x,
    y,
    sizes,
    batches,
    dispose: () => tf.dispose([x, y, ...batches.flatMap((b) => [b.x, b.y])]),
  };
}

for (const backend of TEST_BACKENDS) {
  describe(`HessianAnalyzer model mode (${backend})`, () => {
    before(() => onBackend(backend));

    it('a dataset product is the batch-size-weighted mean of per-batch products (uneven batches)', async () => {
      const start = tf.memory().numTensors;
      const model = smallMlp(11);
      const data = unevenBatches(3);
      const loss = meanSquaredError;
      const all = HessianOperator.fromModel({ model, loss, data: data.batches });
      const vectors = tf.randomNormal([3, all.size], 0, 1, 'float32', 4) as tf.Tensor2D;
      const together = await all.matmat(vectors);
      assert.equal(all.products, 3);
      const perBatch: tf.Tensor2D[] = [];
      for (const batch of data.batches) {
        perBatch.push(
          await HessianOperator.fromModel({ model, loss, data: batch }).matmat(vectors),
        );
      }
      const weighted = tf.tidy(() =>
        tf.addN(perBatch.map((p, i) => tf.mul(p, data.sizes[i]! / 15))),
      );
      tf.dispose(perBatch);
      const scale = maxAbs(together);
      assert.ok(
        maxAbsDiff(together, weighted) < 1e-5 * scale,
        `weighted mean off by ${maxAbsDiff(together, weighted)}`,
      );
      // The mean loss over all rows is the same function, so one batch of all 15 agrees too.
      const whole = await HessianOperator.fromModel({
        model,
        loss,
        data: { x: data.x, y: data.y },
      }).matmat(vectors);
      assert.ok(
        maxAbsDiff(together, whole) < 1e-5 * scale,
        'equals the product on the concatenated batch',
      );
      // The same through tf.data (which hands out batches we dispose), an async iterable and a function.
      const dataset = tf.data.array(data.batches.map((b) => ({ xs: b.x, ys: b.y })));
      const asyncIterable = {
        async *[Symbol.asyncIterator]() {
          for (const b of data.batches) yield b;
        },
      };
      const factory = () => data.batches.map((b) => ({ x: b.x.clone(), y: b.y.clone() }));
      for (const source of [dataset, asyncIterable, factory]) {
        const product = await HessianOperator.fromModel({
          model,
          loss,
          data: source as never,
        }).matmat(vectors);
        assert.ok(
          maxAbsDiff(product, together) < 1e-6 * scale,
          'same product from every kind of data source',
        );
        product.dispose();
      }
      tf.dispose([vectors, together, weighted, whole]);
      data.dispose();
      model.dispose();
      assert.equal(tf.memory().numTensors, start, 'no tensors leak (tf.data batches are disposed)');
    });

    it('runs the model in inference mode: batch norm uses moving statistics, dropout is off', async () => {
      const model = tf.sequential({
        layers: [
          tf.layers.dense({
            units: 5,
            inputShape: [3],
            activation: 'tanh',
            kernelInitializer: tf.initializers.glorotNormal({ seed: 1 }),
          }),
          tf.layers.batchNormalization({
            movingMeanInitializer: tf.initializers.constant({ value: 0.3 }),
            movingVarianceInitializer: tf.initializers.constant({ value: 2 }),
          }),
          tf.layers.dropout({ rate: 0.5 }),
          tf.layers.dense({
            units: 2,
            kernelInitializer: tf.initializers.glorotNormal({ seed: 2 }),
          }),
        ],
      });
      const x = tf.randomNormal([8, 3], 0, 1, 'float32', 1);
      const y = tf.randomNormal([8, 2], 0, 1, 'float32', 2);
      const analyzer = new HessianAnalyzer({ model, loss: meanSquaredError, data: { x, y } });
      const expected = tf.tidy(
        () => meanSquaredError(y, model.predict(x) as tf.Tensor).dataSync()[0]!,
      );
      assert.ok(
        Math.abs((await analyzer.loss()) - expected) < 1e-6,
        'loss equals the inference-mode loss',
      );
      // Inference mode: one example's prediction does not depend on the rest of the batch.
      const one = tf.tidy(() =>
        (model.apply(x.slice(0, 1), { training: false }) as tf.Tensor).dataSync(),
      );
      const first = tf.tidy(() =>
        (model.apply(x, { training: false }) as tf.Tensor).slice(0, 1).dataSync(),
      );
      one.forEach((v, i) => assert.ok(Math.abs(v - first[i]!) < 1e-6, 'batch independent'));
      // Dropout frozen: two products along the same vector agree exactly.
      const v = tf.randomNormal([1, analyzer.size], 0, 1, 'float32', 3) as tf.Tensor2D;
      const a = await analyzer.operator.matmat(v);
      const b = await analyzer.operator.matmat(v);
      assert.equal(maxAbsDiff(a, b), 0, 'deterministic products');
      // Training mode (asked for explicitly) uses batch statistics and gives another loss.
      const training = new HessianAnalyzer({
        model,
        loss: meanSquaredError,
        data: { x, y },
        training: true,
      });
      const trainingLoss = await training.loss();
      assert.ok(
        Math.abs(trainingLoss - expected) > 1e-3,
        `training-mode loss ${trainingLoss} differs`,
      );
      tf.dispose([x, y, v, a, b]);
      model.dispose();
    });

    it('variables without a gradient contribute zeros, are reported, and crash nothing', async () => {
      const start = tf.memory().numTensors;
      const used = tf.tidy(() => tf.variable(tf.tensor1d([1, -2, 0.5]), true, 'used'));
      const unused = tf.tidy(() => tf.variable(tf.ones([2, 2]), true, 'unused'));
      const scale = tf.tensor1d([3, 1, 2]);
      // H for the used variable is diag(6, 2, 4) (loss sum(scale * used^2)).
      const lossFn = () => tf.tidy(() => tf.sum(tf.mul(scale, tf.square(used))) as tf.Scalar);
      const analyzer = new HessianAnalyzer({ lossFn, vars: [used, unused] });
      assert.deepEqual(await analyzer.variablesWithoutGradient(), ['unused']);
      const top = await analyzer.topEigenvalues({ topN: 2 });
      assert.ok(
        relError(top.eigenvalues[0]!, 6) < 1e-4 && relError(top.eigenvalues[1]!, 4) < 1e-4,
        `${top.eigenvalues}`,
      );
      assert.ok(maxAbs(top.eigenvectors[0]![1]!) < 1e-6, 'no weight on the unused variable');
      const trace = await analyzer.trace({ maxIter: 10 });
      assert.ok(
        Math.abs(trace.trace - 12) < 1e-4,
        'Rademacher probes give this diagonal trace exactly',
      );
      const diagonal = await analyzer.diagonal({ samples: 3 });
      assert.deepEqual(Array.from(diagonal.diagonal[1]!.dataSync()), [0, 0, 0, 0]);
      const density = await analyzer.density({ iterations: 10 });
      assert.ok(Math.abs(sum(density.weights[0]!) - 1) < 1e-6, 'density weights sum to 1');
      const perLayer = await analyzer.perLayer({ trace: { maxIter: 10 } });
      assert.equal(perLayer.by, 'variable');
      const silent = perLayer.blocks.find((b) => b.name === 'unused')!;
      assert.deepEqual([silent.noGradient, silent.trace, silent.topEigenvalue], [true, 0, 0]);
      const report = await analyzer.analyze({
        density: { iterations: 5 },
        trace: { maxIter: 5 },
        perLayer: { trace: { maxIter: 5 } },
      });
      assert.deepEqual(report.variablesWithoutGradient, ['unused']);
      tf.dispose([...top.eigenvectors.flat(), ...diagonal.diagonal, used, unused, scale]);
      assert.equal(tf.memory().numTensors, start, 'no tensors leak');
    });

    it('per layer: block traces sum to the trace; each layer block top eigenvalue is exact', async () => {
      const model = smallMlp(21);
      const x = tf.randomNormal([16, 3], 0, 1, 'float32', 8);
      const y = tf.randomNormal([16, 2], 0, 1, 'float32', 9);
      const analyzer = new HessianAnalyzer({ model, loss: meanSquaredError, data: { x, y } });
      const h = await assembleHessian(analyzer.operator);
      const n = analyzer.size;
      const report = await analyzer.perLayer({
        trace: { maxIter: 50 },
        topEigenvalue: { tol: 1e-5 },
      });
      assert.equal(report.by, 'layer');
      assert.deepEqual(
        report.blocks.map((b) => b.name),
        ['hidden_21', 'out_21'],
      );
      assert.deepEqual(
        report.blocks.map((b) => b.variables.length),
        [2, 2],
      );
      assert.ok(
        Math.abs(sum(report.blocks.map((b) => b.trace)) - report.trace) <
          1e-4 * Math.abs(report.trace),
        'layers add up',
      );
      let offset = 0;
      for (const block of report.blocks) {
        const m = block.size;
        const sub = new Float64Array(m * m);
        let exactTrace = 0;
        for (let i = 0; i < m; i++) {
          exactTrace += h[(offset + i) * n + offset + i]!;
          for (let j = 0; j < m; j++) sub[i * m + j] = h[(offset + i) * n + offset + j]!;
        }
        const values = Array.from(symmetricEigen(sub, m).values);
        const exactTop = values.reduce((a, b) => (Math.abs(b) > Math.abs(a) ? b : a));
        assert.ok(
          relError(block.topEigenvalue!, exactTop) < 1e-3,
          `${block.name}: ${block.topEigenvalue} vs ${exactTop}`,
        );
        assert.ok(
          Math.abs(block.trace - exactTrace) < 3.5 * block.traceStdError,
          `${block.name} trace ${block.trace} vs ${exactTrace}`,
        );
        offset += m;
      }
      const byVariable = await analyzer.perLayer({
        by: 'variable',
        topEigenvalue: false,
        trace: { maxIter: 20 },
      });
      assert.equal(byVariable.blocks.length, 4);
      assert.equal(byVariable.blocks[0]!.topEigenvalue, null);
      tf.dispose([x, y]);
      model.dispose();
    });

    it('loss landscapes along top eigenvectors follow the quadratic exactly and restore the weights', async () => {
      const problem = leastSquares(spectrum([6, 3], 8, 0.1, 1), 20, 4, 31);
      const analyzer = new HessianAnalyzer({ lossFn: problem.lossFn, vars: problem.vars });
      const before = problem.vars.map((v) => Array.from(v.dataSync()));
      const top = await analyzer.topEigenvalues({ topN: 2, tol: 1e-6 });
      const g = tf.tidy(() => {
        const { grads } = tf.variableGrads(problem.lossFn, problem.vars);
        return analyzer.operator.flatten(problem.vars.map((v) => grads[v.name]!));
      });
      const slopes = top.eigenvectors.map((parts) =>
        tf.tidy(() => tf.sum(tf.mul(g, analyzer.operator.flatten(parts))).dataSync()[0]!),
      );
      const l0 = await analyzer.loss();
      const one = await analyzer.lossLandscape1d({ steps: 5, radius: 0.5 });
      assert.deepEqual(one.alphas, [-0.5, -0.25, 0, 0.25, 0.5]);
      one.alphas.forEach((a, i) => {
        const expected = l0 + a * slopes[0]! + 0.5 * a * a * top.eigenvalues[0]!;
        assert.ok(
          Math.abs(one.losses[i]! - expected) < 1e-4 * Math.max(1, expected),
          `1-D at ${a}: ${one.losses[i]} vs ${expected}`,
        );
      });
      const two = await analyzer.lossLandscape2d({ steps: 3, radius: 1 });
      two.alphas.forEach((a, i) =>
        two.betas.forEach((b, j) => {
          const expected =
            l0 +
            a * slopes[0]! +
            b * slopes[1]! +
            0.5 * (a * a * top.eigenvalues[0]! + b * b * top.eigenvalues[1]!);
          assert.ok(
            Math.abs(two.losses[i]![j]! - expected) < 1e-4 * Math.max(1, expected),
            `2-D at ${a}, ${b}`,
          );
        }),
      );
      problem.vars.forEach((v, i) =>
        assert.deepEqual(Array.from(v.dataSync()), before[i], 'weights restored bit for bit'),
      );
      tf.dispose([g, ...top.eigenvectors.flat()]);
      problem.dispose();
    });

    it('analyze() over a dataset returns plain JSON and leaks no tensors', async () => {
      const model = smallMlp(41);
      const data = unevenBatches(5);
      const start = tf.memory().numTensors;
      const analyzer = new HessianAnalyzer({ model, loss: meanSquaredError, data: data.batches });
      const report = await analyzer.analyze({
        topEigenvalues: { topN: 2 },
        trace: { maxIter: 20 },
        density: { iterations: 15, runs: 2 },
        perLayer: { trace: { maxIter: 10 }, topEigenvalue: { maxIter: 20 } },
        landscape: { steps: 3 },
      });
      assert.equal(tf.memory().numTensors, start, 'no tensors leak across a full analysis');
      const json = JSON.parse(JSON.stringify(report));
      assert.deepEqual(json, report, 'the report survives JSON unchanged');
      assert.equal(report.parameters, 38);
      assert.equal(report.topEigenvalues!.eigenvalues.length, 2);
      assert.equal(report.density!.nodes.length, 2);
      assert.equal(report.landscape2d!.losses.length, 3);
      assert.deepEqual(
        report.variables.map((v) => v.layer),
        ['hidden_41', 'hidden_41', 'out_41', 'out_41'],
      );
      assert.ok(
        report.products >= report.trace!.products + report.density!.products,
        'products add up',
      );
      data.dispose();
      model.dispose();
    });

    it('rejects bad arguments with clear errors', async () => {
      const model = smallMlp(51);
      const x = tf.randomNormal([4, 3]);
      const y = tf.randomNormal([4, 2]);
      const analyzer = new HessianAnalyzer({ model, loss: meanSquaredError, data: { x, y } });
      await assert.rejects(
        analyzer.topEigenvalues({ topN: 0 }),
        /topN must be a positive integer, got 0/,
      );
      await assert.rejects(
        analyzer.topEigenvalues({ method: 'qr' as never }),
        /method must be 'lanczos' or 'power'/,
      );
      await assert.rejects(
        analyzer.trace({ method: 'exact' as never }),
        /method must be 'hutchinson' or 'hutch\+\+'/,
      );
      const empty = new HessianAnalyzer({ model, loss: meanSquaredError, data: [] });
      await assert.rejects(empty.trace(), /The dataset yielded no batches/);
      await assert.rejects(empty.trace(), { name: 'AnalysisInputError' });
      const y5 = tf.randomNormal([5, 2]);
      assert.throws(
        () => new HessianAnalyzer({ model, loss: meanSquaredError, data: { x, y: y5 } }),
        /The batch: x has 4 rows but y has 5/,
      );
      await assert.rejects(
        new HessianAnalyzer({
          model,
          loss: meanSquaredError,
          data: [
            { x, y },
            { x, y: y5 },
          ],
        }).trace(),
        /Batch 1: x has 4 rows but y has 5/,
      );
      const wrongShape = tf.randomNormal([4, 7]);
      assert.throws(
        () => new HessianAnalyzer({ model, loss: meanSquaredError, data: { x: wrongShape, y } }),
        /x has shape \[4, 7\] but the model expects \[null, 3\]/,
      );
      function* generator() {
        yield { x, y };
      }
      assert.throws(
        () => new HessianAnalyzer({ model, loss: meanSquaredError, data: generator() }),
        /one-shot iterator/,
      );
      await assert.rejects(
        new HessianAnalyzer({
          model,
          loss: meanSquaredError,
          data: [{ inputs: x }] as never,
        }).trace(),
        /Batch 0 must have tensor fields x and y/,
      );
      assert.throws(
        () => new HessianAnalyzer({} as never),
        /needs \{ lossFn, vars \} or \{ model, loss, data \}/,
      );
      assert.throws(
        () => new HessianAnalyzer({ lossFn: () => tf.scalar(0), vars: [] }),
        /non-empty array of tf.Variable/,
      );
      await assert.rejects(
        analyzer.perLayer({ by: 'neuron' as never }),
        /by must be 'layer' or 'variable'/,
      );
      await assert.rejects(
        analyzer.lossLandscape1d({ steps: 1 }),
        /steps must be an integer of at least 2/,
      );
      tf.dispose([x, y, y5, wrongShape]);
      model.dispose();
    });
  });
}
