/**
 * The analysis on a real model: the zoo's small CNN, trained briefly on the Fashion-MNIST
 * slice, analysed through tf.layers with the second-order-safe cross-entropy.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  buildSmallCnn,
  datasetToTensors,
  HessianAnalyzer,
  softmaxCrossEntropy,
} from '../../src/index.js';
import { loadFashionMnistSlice } from '../../src/data/node/index.js';
import { onBackend, TEST_BACKENDS } from '../helpers.js';

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

// The cpu backend needs ~3 s per product on this CNN (wasm ~0.3 s), so this runs on wasm
// when it is among the test backends; products on both are checked against each other elsewhere.
const backends = TEST_BACKENDS.includes('wasm') ? (['wasm'] as const) : TEST_BACKENDS;

for (const backend of backends) {
  describe(`HessianAnalyzer on the small CNN, Fashion-MNIST (${backend})`, () => {
    before(() => onBackend(backend));

    it('positive top eigenvalues, trace = sum of per-layer traces, density support holds the top eigenvalue', async () => {
      const { x, y } = datasetToTensors(loadFashionMnistSlice('train', { limit: 512 }));
      const model = buildSmallCnn({ seed: 7 });
      // Brief training: one epoch of Adam at batch 64, so the analysis sees a real (not random) model.
      const optimizer = tf.train.adam(2e-3);
      const losses: number[] = [];
      for (let start = 0; start < 512; start += 64) {
        const xb = x.slice(start, 64);
        const yb = y.slice(start, 64);
        const loss = optimizer.minimize(
          () => softmaxCrossEntropy(yb, model.apply(xb, { training: true }) as tf.Tensor),
          true,
        )!;
        losses.push(loss.dataSync()[0]!);
        tf.dispose([xb, yb, loss]);
      }
      optimizer.dispose();
      assert.ok(
        losses[losses.length - 1]! < losses[0]!,
        `training lowered the loss: ${losses.map((l) => l.toFixed(2))}`,
      );

      const batch = { x: x.slice(0, 32), y: y.slice(0, 32) };
      const startTensors = tf.memory().numTensors;
      const analyzer = new HessianAnalyzer({ model, loss: softmaxCrossEntropy, data: batch });
      assert.deepEqual(await analyzer.variablesWithoutGradient(), []);
      const top = await analyzer.topEigenvalues({ topN: 2 });
      tf.dispose(top.eigenvectors.flat());
      const trace = await analyzer.trace({ maxIter: 8, seed: 1 });
      const perLayer = await analyzer.perLayer({
        trace: { maxIter: 8, seed: 2 },
        topEigenvalue: false,
      });
      const density = await analyzer.density({ iterations: 16 });
      const curve = analyzer.densityOnGrid(density);
      console.log(
        `  [${backend}] ${analyzer.size} parameters; top eigenvalues ${top.eigenvalues.map((v) => v.toFixed(3))} ` +
          `(${top.products} products); trace ${trace.trace.toFixed(2)} +- ${trace.stdError.toFixed(2)}; ` +
          `per layer ${perLayer.blocks.map((b) => `${b.name} ${b.trace.toFixed(2)}`).join(', ')}; ` +
          `density support [${curve.grid[0]!.toFixed(3)}, ${curve.grid[curve.grid.length - 1]!.toFixed(3)}]`,
      );
      assert.equal(tf.memory().numTensors, startTensors, 'no tensors leak across the analysis');

      assert.ok(
        top.eigenvalues.every((v) => v > 0),
        `top eigenvalues positive: ${top.eigenvalues}`,
      );
      assert.ok(top.converged.every(Boolean), 'top eigenvalues converged');
      assert.deepEqual(
        perLayer.blocks.map((b) => b.variables.length),
        [2, 2, 2, 2],
        'four layers with kernel and bias',
      );
      const layerSum = sum(perLayer.blocks.map((b) => b.trace));
      assert.ok(
        Math.abs(layerSum - perLayer.trace) < 1e-6 * Math.abs(perLayer.trace),
        'blocks add up',
      );
      const combined = Math.sqrt(trace.stdError ** 2 + perLayer.traceStdError ** 2);
      assert.ok(
        Math.abs(trace.trace - layerSum) < 3 * combined,
        `trace ${trace.trace} vs sum of layer traces ${layerSum} (independent probes)`,
      );
      const lambda = top.eigenvalues[0]!;
      const last = curve.grid.length - 1;
      assert.ok(
        curve.grid[0]! <= lambda && lambda <= curve.grid[last]!,
        'the top eigenvalue lies in the support',
      );
      // The quadrature measure has a node at the top eigenvalue (its weight, the squared overlap
      // of a random start with the top eigenvector, is random and about 1/n, so not tested).
      const atTop = density.nodes[0]!.findIndex((node) => Math.abs(node - lambda) < 1e-3 * lambda);
      assert.ok(
        atTop >= 0 && density.weights[0]![atTop]! > 0,
        `a node at ${lambda}: ${density.nodes[0]}`,
      );

      tf.dispose([x, y, batch.x, batch.y]);
      model.dispose();
    });
  });
}
