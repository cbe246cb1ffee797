import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { HessianAnalyzer } from '../../src/analysis/index.js';
import { meanSquaredError } from '../../src/losses.js';
import { onBackend, TEST_BACKENDS } from '../helpers.js';
import { relError, spectrum } from '../estimators/problems.js';
import {
  assembleHessian,
  eigenvaluesByMagnitude,
  leastSquares,
  smallMlp,
  traceOf,
} from './fixtures.js';

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

for (const backend of TEST_BACKENDS) {
  describe(`HessianAnalyzer on exact problems (${backend})`, () => {
    before(() => onBackend(backend));

    for (const [name, values] of [
      ['clustered spectrum', spectrum([10, 8, 7], 37, 0.5, 1)],
      ['near-degenerate top pair', spectrum([10, 9.999, 6], 37, 0, 2)],
    ] as const) {
      it(`least squares, H = 2 X^T X / n (${name}): eigenvalues, trace, density, diagonal`, async () => {
        const start = tf.memory().numTensors;
        const problem = leastSquares([...values], 60, 25, 21);
        const analyzer = new HessianAnalyzer({ lossFn: problem.lossFn, vars: problem.vars });
        assert.equal(analyzer.size, 40);
        const exact = eigenvaluesByMagnitude(problem.hessian, 40);
        // The Hessian assembled from products is 2 X^T X / n itself.
        const assembled = await assembleHessian(analyzer.operator);
        const worst = Math.max(...assembled.map((h, i) => Math.abs(h - problem.hessian[i]!)));
        assert.ok(worst < 1e-4 * exact[0]!, `assembled Hessian off by ${worst}`);

        const lanczos = await analyzer.topEigenvalues({ topN: 3 });
        const power = await analyzer.topEigenvalues({
          topN: 3,
          method: 'power',
          tol: 1e-6,
          maxIter: 500,
        });
        console.log(
          `  [${name}] Hessian-vector products for the top 3: power iteration ${power.products}, Lanczos ${lanczos.products}`,
        );
        for (let i = 0; i < 3; i++) {
          assert.ok(
            relError(lanczos.eigenvalues[i]!, exact[i]!) < 1e-3,
            `Lanczos ${lanczos.eigenvalues[i]} vs ${exact[i]}`,
          );
          assert.ok(
            relError(power.eigenvalues[i]!, exact[i]!) < 1e-3,
            `power ${power.eigenvalues[i]} vs ${exact[i]}`,
          );
        }
        assert.ok(lanczos.products * 3 < power.products, 'Lanczos needs markedly fewer products');
        // Eigenvectors come back shaped like the variables.
        assert.deepEqual(
          lanczos.eigenvectors[0]!.map((t) => t.shape),
          [[25, 1], [15]],
        );
        const norm = tf.tidy(
          () => tf.addN(lanczos.eigenvectors[0]!.map((t) => tf.sum(tf.square(t)))).dataSync()[0]!,
        );
        assert.ok(Math.abs(norm - 1) < 1e-5, `unit eigenvector (${norm})`);

        const exactTrace = traceOf(problem.hessian, 40);
        const trace = await analyzer.trace({ maxIter: 100 });
        console.log(
          `  [${name}] trace ${trace.trace.toFixed(3)} +- ${trace.stdError.toFixed(3)}, exact ${exactTrace.toFixed(3)}`,
        );
        assert.ok(
          Math.abs(trace.trace - exactTrace) < 3 * trace.stdError,
          'trace within 3 standard errors',
        );

        const density = await analyzer.density({ iterations: 30, runs: 4 });
        const moments = density.nodes.map((nodes, r) =>
          sum(nodes.map((x, i) => x * density.weights[r]![i]!)),
        );
        const mean = sum(moments) / moments.length;
        const se = Math.sqrt(
          sum(moments.map((m) => (m - mean) ** 2)) / (moments.length - 1) / moments.length,
        );
        assert.ok(
          Math.abs(mean - exactTrace / 40) < 3 * se,
          `first moment ${mean} vs trace/n ${exactTrace / 40}`,
        );
        const { grid, density: curve } = analyzer.densityOnGrid(density);
        assert.ok(
          Math.abs(sum(curve) * (grid[1]! - grid[0]!) - 1) < 1e-9,
          'density integrates to 1',
        );
        assert.ok(
          grid[0]! <= exact[exact.length - 1]! + 0.02 && grid[grid.length - 1]! >= exact[0]!,
          'support covers the spectrum',
        );

        const diagonal = await analyzer.diagonal({ samples: 200 });
        const estimate = [...diagonal.diagonal[0]!.dataSync(), ...diagonal.diagonal[1]!.dataSync()];
        estimate.forEach((x, i) => {
          let off = 0;
          for (let j = 0; j < 40; j++) if (j !== i) off += problem.hessian[i * 40 + j]! ** 2;
          const sd = Math.sqrt(off / 200);
          assert.ok(
            Math.abs(x - problem.hessian[i * 41]!) < 4.5 * sd + 1e-4,
            `diagonal entry ${i}`,
          );
        });

        tf.dispose([
          ...lanczos.eigenvectors.flat(),
          ...power.eigenvectors.flat(),
          ...diagonal.diagonal,
        ]);
        problem.dispose();
        assert.equal(tf.memory().numTensors, start, 'no tensors leak');
      });
    }

    it('a small tf.layers MLP: top eigenvalues and trace match its assembled, decomposed Hessian', async () => {
      const start = tf.memory().numTensors;
      const model = smallMlp(5);
      const x = tf.randomNormal([16, 3], 0, 1, 'float32', 6);
      const y = tf.randomNormal([16, 2], 0, 1, 'float32', 7);
      const analyzer = new HessianAnalyzer({ model, loss: meanSquaredError, data: { x, y } });
      assert.equal(analyzer.size, 3 * 6 + 6 + 6 * 2 + 2);
      const n = analyzer.size;
      const h = await assembleHessian(analyzer.operator);
      const exact = eigenvaluesByMagnitude(h, n);
      const exactTrace = traceOf(h, n);
      const top = await analyzer.topEigenvalues({ topN: 3 });
      const power = await analyzer.topEigenvalues({
        topN: 3,
        method: 'power',
        tol: 1e-6,
        maxIter: 1000,
      });
      console.log(
        `  [MLP, ${n} parameters] exact top |eigenvalues| ${exact.slice(0, 3).map((v) => v.toFixed(4))}; products: power ${power.products}, Lanczos ${top.products}`,
      );
      for (let i = 0; i < 3; i++) {
        assert.ok(
          relError(top.eigenvalues[i]!, exact[i]!) < 1e-3,
          `Lanczos ${top.eigenvalues[i]} vs ${exact[i]}`,
        );
        assert.ok(
          relError(power.eigenvalues[i]!, exact[i]!) < 1e-3,
          `power ${power.eigenvalues[i]} vs ${exact[i]}`,
        );
      }
      assert.ok(top.products < power.products, 'Lanczos needs fewer products');
      const trace = await analyzer.trace({ maxIter: 100 });
      assert.ok(
        Math.abs(trace.trace - exactTrace) < 3 * trace.stdError,
        `trace ${trace.trace} +- ${trace.stdError} vs ${exactTrace}`,
      );
      const plus = await analyzer.trace({ method: 'hutch++', maxIter: 30 });
      assert.equal(plus.products, 30);
      // With 30 products Hutch++ sketches 10 of 38 directions; its error should be modest.
      assert.ok(
        Math.abs(plus.trace - exactTrace) < 0.2 * Math.abs(exactTrace) + 3 * plus.stdError,
        `Hutch++ ${plus.trace} vs ${exactTrace}`,
      );
      tf.dispose([...top.eigenvectors.flat(), ...power.eigenvectors.flat(), x, y]);
      model.dispose();
      assert.equal(tf.memory().numTensors, start, 'no tensors leak');
    });
  });
}
