import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  densityOnGrid,
  hutchinsonOperatorDiagonal,
  hutchinsonTrace,
  hutchPlusPlusTrace,
  lanczosTopEigen,
  MatrixOperator,
  powerIteration,
  stochasticLanczosQuadrature,
} from '../../src/estimators/index.js';
import { onBackend, TEST_BACKENDS } from '../helpers.js';
import { relError, spectrum, symmetricWithSpectrum } from './problems.js';

const sum = (xs: ArrayLike<number>) => Array.from(xs).reduce((a, b) => a + b, 0);

for (const backend of TEST_BACKENDS) {
  describe(`estimators on an explicit matrix (${backend})`, () => {
    before(() => onBackend(backend));

    for (const [name, values] of [
      // A few separated top eigenvalues over a clustered bulk.
      ['clustered bulk', spectrum([10, 8, 7], 97, 0, 1)],
      // The top pair 1e-4 apart: hard for eigenvectors, but eigenvalues must still match.
      ['near-degenerate top pair', spectrum([10, 9.999, 6], 77, -1, 2)],
    ] as const) {
      it(`top-3 eigenvalues to 1e-3 by power iteration and Lanczos (${name})`, async () => {
        const start = tf.memory().numTensors;
        const op = new MatrixOperator(symmetricWithSpectrum(values, 3));
        const exact = [...values].sort((a, b) => Math.abs(b) - Math.abs(a)).slice(0, 3);
        const power = await powerIteration(op, { topN: 3, tol: 1e-6, maxIter: 1000 });
        const lanczos = await lanczosTopEigen(op, { topN: 3, tol: 1e-4 });
        console.log(
          `  [${name}] products: power iteration ${power.products}, Lanczos ${lanczos.products}; ` +
            `power ${power.eigenvalues.map((x) => x.toFixed(5))}, Lanczos ${lanczos.eigenvalues.map((x) => x.toFixed(5))}`,
        );
        exact.forEach((x, i) => {
          assert.ok(
            relError(power.eigenvalues[i]!, x) < 1e-3,
            `power ${i}: ${power.eigenvalues[i]} vs ${x}`,
          );
          assert.ok(
            relError(lanczos.eigenvalues[i]!, x) < 1e-3,
            `Lanczos ${i}: ${lanczos.eigenvalues[i]} vs ${x}`,
          );
        });
        assert.ok(lanczos.converged.every(Boolean), 'Lanczos converged');
        assert.ok(lanczos.products * 3 < power.products, 'Lanczos needs markedly fewer products');
        // Eigenvectors: unit norm and A v = lambda v up to the convergence tolerance.
        for (const [i, v] of lanczos.eigenvectors.entries()) {
          const residual = tf.tidy(() => {
            const av = tf.matMul(
              v.reshape([1, -1]),
              tf.tensor2d(Array.from(symmetricWithSpectrum(values, 3)), [
                values.length,
                values.length,
              ]),
            );
            return tf
              .norm(tf.sub(av.reshape([-1]), tf.mul(v, lanczos.eigenvalues[i]!)))
              .dataSync()[0]!;
          });
          assert.ok(residual < 1e-3 * Math.abs(lanczos.eigenvalues[i]!), `residual ${residual}`);
        }
        tf.dispose([...power.eigenvectors, ...lanczos.eigenvectors]);
        op.dispose();
        assert.equal(tf.memory().numTensors, start);
      });
    }

    it('power iteration and Lanczos stop on the residual ||Av - lambda v|| <= tol |lambda| and report it', async () => {
      // Top eigenvalues 5 % apart: the Rayleigh quotient creeps, so PyHessian's rule (relative
      // change below tol) stopped after 63 products with lambda_1..3 off by 6.7e-3, 6.5e-3, 1.2e-2.
      const values = spectrum([10, 9.5, 9], 47, 0, 1);
      const matrix = symmetricWithSpectrum(values, 11);
      const op = new MatrixOperator(matrix);
      const a = tf.tensor2d(Array.from(matrix), [values.length, values.length]);
      const tol = 1e-3;
      for (const run of [powerIteration, lanczosTopEigen]) {
        const r = await run(op, { topN: 3, tol, maxIter: 1000 });
        assert.equal(r.tol, tol);
        [10, 9.5, 9].forEach((exact, i) => {
          assert.ok(
            relError(r.eigenvalues[i]!, exact) <= tol,
            `${run.name} ${i}: ${r.eigenvalues[i]} vs ${exact}`,
          );
          const trueResidual = tf.tidy(() => {
            const v = r.eigenvectors[i]!;
            const av = tf.matMul(v.reshape([1, -1]), a).reshape([-1]);
            return tf.norm(tf.sub(av, tf.mul(v, r.eigenvalues[i]!))).dataSync()[0]!;
          });
          const relative = trueResidual / Math.abs(r.eigenvalues[i]!);
          assert.ok(r.converged[i] && r.residuals[i]! <= tol, `${run.name} ${i} converged`);
          assert.ok(relative <= 1.05 * tol, `${run.name} ${i}: true residual ${relative}`);
          // The reported residual is the true one (float32 rounding aside).
          assert.ok(
            Math.abs(relative - r.residuals[i]!) <= 0.05 * relative + 1e-5,
            `${run.name} ${i}: reported ${r.residuals[i]} vs true ${relative}`,
          );
        });
        tf.dispose(r.eigenvectors);
      }
      a.dispose();
      op.dispose();
    });

    it('Lanczos finds the smallest and largest algebraic eigenvalues of an indefinite matrix', async () => {
      const values = spectrum([-12, 9], 48, -3, 3);
      const op = new MatrixOperator(symmetricWithSpectrum(values, 5));
      const largest = await lanczosTopEigen(op, { topN: 2, which: 'largest', tol: 1e-5 });
      const smallest = await lanczosTopEigen(op, { topN: 1, which: 'smallest', tol: 1e-5 });
      const magnitude = await powerIteration(op, { topN: 1, tol: 1e-7, maxIter: 500 });
      assert.ok(
        relError(largest.eigenvalues[0]!, 9) < 1e-4,
        'relError(largest.eigenvalues[0]!, 9) < 1e-4',
      );
      assert.ok(
        relError(largest.eigenvalues[1]!, 3 - 3 / 48) < 1e-3,
        'relError(largest.eigenvalues[1]!, 3 - 3 / 48) < 1e-3',
      );
      assert.ok(
        relError(smallest.eigenvalues[0]!, -12) < 1e-4,
        'relError(smallest.eigenvalues[0]!, -12) < 1e-4',
      );
      assert.ok(
        relError(magnitude.eigenvalues[0]!, -12) < 1e-4,
        'relError(magnitude.eigenvalues[0]!, -12) < 1e-4',
      );
      await assert.rejects(powerIteration(op, { which: 'largest' }), /largest magnitude only/);
      tf.dispose([...largest.eigenvectors, ...smallest.eigenvectors, ...magnitude.eigenvectors]);
      op.dispose();
    });

    it('finds both copies of a repeated top eigenvalue (Lanczos restarts at an invariant subspace)', async () => {
      // Rank 3 with a double top eigenvalue: the Krylov space of one start vector has dimension 2.
      const values = [5, 5, 2, ...new Array<number>(17).fill(0)];
      const op = new MatrixOperator(symmetricWithSpectrum(values, 9));
      const r = await lanczosTopEigen(op, { topN: 3 });
      assert.ok(
        relError(r.eigenvalues[0]!, 5) < 1e-4 && relError(r.eigenvalues[1]!, 5) < 1e-4,
        'relError(r.eigenvalues[0]!, 5) < 1e-4 && relError(r.eigenvalues[1]!, 5) < 1e-4',
      );
      assert.ok(relError(r.eigenvalues[2]!, 2) < 1e-4, `${r.eigenvalues}`);
      tf.dispose(r.eigenvectors);
      op.dispose();
    });

    it('Hutchinson trace lies within 3 standard errors; block traces add up', async () => {
      const values = spectrum([20, 15], 58, 0.5, 3);
      const a = symmetricWithSpectrum(values, 7);
      const op = new MatrixOperator(a);
      const segments = [10, 30, 20];
      const r = await hutchinsonTrace(op, { maxIter: 200, tol: 1e-4, segments, probesPerPass: 16 });
      const exact = sum(values);
      console.log(
        `  Hutchinson: ${r.trace.toFixed(3)} +- ${r.stdError.toFixed(3)} (exact ${exact.toFixed(3)}, ${r.products} products)`,
      );
      assert.equal(r.products, 200);
      assert.ok(Math.abs(r.trace - exact) < 3 * r.stdError, 'within 3 standard errors');
      assert.ok(
        Math.abs(sum(r.segments!.map((s) => s.trace)) - r.trace) < 1e-6 * Math.abs(r.trace),
      );
      let offset = 0;
      r.segments!.forEach((s, b) => {
        let blockTrace = 0;
        for (let i = offset; i < offset + segments[b]!; i++) blockTrace += a[i * 60 + i]!;
        offset += segments[b]!;
        assert.ok(
          Math.abs(s.trace - blockTrace) < 4 * s.stdError,
          `block ${b}: ${s.trace} vs ${blockTrace}`,
        );
      });
      // It stops early once the standard error is small enough.
      const early = await hutchinsonTrace(op, { maxIter: 200, tol: 0.05 });
      assert.ok(
        early.products < 200 && early.stdError <= 0.05 * Math.abs(early.trace),
        'early.products < 200 && early.stdError <= 0.05 * Math.abs(early.trace)',
      );
      op.dispose();
    });

    it('Hutch++ beats Hutchinson at equal budget when a few eigenvalues dominate', async () => {
      const values = spectrum([100, 80, 60, 50, 40], 195, 0, 1);
      const op = new MatrixOperator(symmetricWithSpectrum(values, 13));
      const exact = sum(values);
      const budget = 30;
      let plainError = 0;
      let plusError = 0;
      const seeds = 10;
      for (let seed = 0; seed < seeds; seed++) {
        const plain = await hutchinsonTrace(op, {
          maxIter: budget,
          tol: 0,
          seed,
          probesPerPass: budget,
        });
        const plus = await hutchPlusPlusTrace(op, { budget, seed });
        assert.equal(plain.products, budget);
        assert.equal(plus.products, budget);
        plainError += Math.abs(plain.trace - exact) / seeds;
        plusError += Math.abs(plus.trace - exact) / seeds;
      }
      console.log(
        `  mean |error| at ${budget} products: Hutchinson ${plainError.toFixed(3)}, Hutch++ ${plusError.toFixed(3)} (trace ${exact.toFixed(1)})`,
      );
      assert.ok(plusError < plainError / 3, `Hutch++ ${plusError} vs Hutchinson ${plainError}`);
      op.dispose();
    });

    it('Hutchinson diagonal is exact for a diagonal matrix and close for a general one', async () => {
      const diag = [3, -1, 0.5, 7, 2];
      const dense = new Float64Array(25);
      diag.forEach((d, i) => (dense[i * 5 + i] = d));
      const dop = new MatrixOperator(dense);
      const exactDiag = await hutchinsonOperatorDiagonal(dop, { samples: 1 });
      Array.from(exactDiag.diagonal.dataSync()).forEach((x, i) =>
        assert.ok(Math.abs(x - diag[i]!) < 1e-6),
      );
      const a = symmetricWithSpectrum(spectrum([4], 19, 0.5, 1.5), 2);
      const op = new MatrixOperator(a);
      const samples = 400;
      const r = await hutchinsonOperatorDiagonal(op, { samples, probesPerPass: 100 });
      assert.equal(r.products, samples);
      const est = r.diagonal.dataSync();
      for (let i = 0; i < 20; i++) {
        // Var[z_i (Az)_i] = sum_{j != i} A_ij^2 per probe.
        let offDiagonal = 0;
        for (let j = 0; j < 20; j++) if (j !== i) offDiagonal += a[i * 20 + j]! ** 2;
        const sd = Math.sqrt(offDiagonal / samples);
        assert.ok(Math.abs(est[i]! - a[i * 20 + i]!) < 4 * sd + 1e-5, `entry ${i}`);
      }
      tf.dispose([exactDiag.diagonal, r.diagonal]);
      dop.dispose();
      op.dispose();
    });

    it('SLQ: weights sum to 1, density integrates to 1, first moment matches trace / n', async () => {
      const values = spectrum([30, 25], 148, -1, 2);
      const n = values.length;
      const op = new MatrixOperator(symmetricWithSpectrum(values, 17));
      const runs = 8;
      const slq = await stochasticLanczosQuadrature(op, { iterations: 40, runs });
      assert.equal(slq.products, 40 * runs);
      const moments = slq.nodes.map((nodes, r) => {
        const w = slq.weights[r]!;
        assert.ok(Math.abs(sum(w) - 1) < 1e-6, `weights sum to ${sum(w)}`);
        assert.ok(
          Math.min(...nodes) >= -1 - 1e-3 && Math.max(...nodes) <= 30 + 1e-3,
          'Ritz values interlace',
        );
        assert.ok(relError(Math.max(...nodes), 30) < 1e-4, 'the top eigenvalue is a node');
        return sum(nodes.map((x, i) => x * w[i]!));
      });
      const mean = sum(moments) / runs;
      const se = Math.sqrt(sum(moments.map((m) => (m - mean) ** 2)) / (runs - 1) / runs);
      const exact = sum(values) / n;
      console.log(
        `  SLQ first moment ${mean.toFixed(4)} +- ${se.toFixed(4)}, trace/n ${exact.toFixed(4)}`,
      );
      assert.ok(Math.abs(mean - exact) < 3 * se, `first moment ${mean} vs ${exact}`);
      const { grid, density } = densityOnGrid(slq);
      assert.equal(grid.length, 10000);
      const dx = grid[1]! - grid[0]!;
      assert.ok(Math.abs(sum(density) * dx - 1) < 1e-9, 'integrates to 1');
      op.dispose();
    });

    it('SLQ on a small matrix stops at the invariant subspace and reproduces the spectrum exactly', async () => {
      const values = [4, 2, 1, -1, 0.5];
      const op = new MatrixOperator(symmetricWithSpectrum(values, 1));
      const slq = await stochasticLanczosQuadrature(op, { iterations: 100 });
      assert.ok(slq.products <= 5, 'slq.products <= 5');
      const sorted = [...values].sort((a, b) => a - b);
      slq.nodes[0]!.forEach(
        (x, i) => assert.ok(Math.abs(x - sorted[i]!) < 1e-4),
        'Math.abs(x - sorted[i]!) < 1e-4)',
      );
      op.dispose();
    });

    it('rejects bad arguments with clear errors', async () => {
      const op = new MatrixOperator([
        [2, 0],
        [0, 1],
      ]);
      await assert.rejects(
        lanczosTopEigen(op, { topN: 0 }),
        /topN must be a positive integer, got 0/,
      );
      await assert.rejects(
        powerIteration(op, { topN: 3 }),
        /topN \(3\) exceeds the number of parameters \(2\)/,
      );
      await assert.rejects(
        hutchinsonTrace(op, { maxIter: 0 }),
        /maxIter must be an integer of at least 1/,
      );
      await assert.rejects(hutchPlusPlusTrace(op, { budget: 2 }), /at least 3 products/);
      await assert.rejects(
        stochasticLanczosQuadrature(op, { runs: 0 }),
        /runs must be a positive integer/,
      );
      await assert.rejects(
        hutchinsonTrace(op, { segments: [1, 2] }),
        /summing to the operator size 2/,
      );
      assert.throws(() => densityOnGrid({ nodes: [], weights: [] }), /at least one run/);
      assert.throws(() => new MatrixOperator([1, 2, 3]), /do not form a square/);
      op.dispose();
    });
  });
}

describe('densityOnGrid', () => {
  it('puts a Gaussian of variance 1e-5 * max(1, width) at a single node, as PyHessian', () => {
    // The grid ends 0.01 = 3.2 standard deviations from the node, so renormalising the
    // truncated Gaussian raises the peak by about 0.16 %.
    const { grid, density, variance } = densityOnGrid(
      { nodes: [[2]], weights: [[1]] },
      { bins: 2001 },
    );
    assert.ok(
      Math.abs(grid[0]! - 1.99) < 1e-12 && Math.abs(grid[2000]! - 2.01) < 1e-12,
      'Math.abs(grid[0]! - 1.99) < 1e-12 && Math.abs(grid[2000]! - 2.01) < 1e-12',
    );
    assert.equal(variance, 1e-5);
    const peak = density[1000]!;
    assert.ok(
      Math.abs(peak - 1 / Math.sqrt(2 * Math.PI * 1e-5)) / peak < 3e-3,
      'Math.abs(peak - 1 / Math.sqrt(2 * Math.PI * 1e-5)) / peak < 3e-3',
    );
  });

  it('averages runs and matches a direct evaluation of the mixture', () => {
    const quadrature = {
      nodes: [
        [0, 1, 5],
        [0.5, 4],
      ],
      weights: [
        [0.2, 0.3, 0.5],
        [0.6, 0.4],
      ],
    };
    const { grid, density, variance } = densityOnGrid(quadrature, { bins: 500 });
    assert.ok(
      Math.abs(variance - 1e-5 * (4.5 - 0.25 + 0.02)) < 1e-12 * variance,
      'Math.abs(variance - 1e-5 * (4.5 - 0.25 + 0.02)) < 1e-12 * variance',
    );
    const direct = grid.map((x) => {
      let s = 0;
      quadrature.nodes.forEach((run, r) =>
        run.forEach((node, i) => {
          s +=
            (quadrature.weights[r]![i]! * Math.exp(-((x - node) ** 2) / (2 * variance))) /
            Math.sqrt(2 * Math.PI * variance) /
            2;
        }),
      );
      return s;
    });
    const dx = grid[1]! - grid[0]!;
    const total = sum(direct) * dx;
    density.forEach(
      (d, j) => assert.ok(Math.abs(d - direct[j]! / total) < 1e-9 * Math.max(1, d)),
      'Math.abs(d - direct[j]! / total) < 1e-9 * Math.max(1, d))',
    );
  });
});
