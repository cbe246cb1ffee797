/**
 * The density plot's range: PyHessian's grid ends 0.01 past the runs' mean largest node,
 * which cut the top eigenvalue's peak; the plot reaches a few kernel widths past every node.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { densityOnGrid } from '../../src/estimators/index.js';
import { PLOT_MARGIN_WIDTHS, spectralDensitySvg } from '../../src/report/index.js';

/** One run: a bulk at 0 and an outlier at 100 (a spread of 100 makes the kernel 0.032 wide). */
const outlier = { nodes: [[0, 0.5, 100]], weights: [[0.6, 0.3, 0.1]] };
/** Two runs that disagree on the top node: its mean, 11, is below the second run's 12. */
const disagreeing = {
  nodes: [
    [0, 10],
    [0, 12],
  ],
  weights: [
    [0.5, 0.5],
    [0.5, 0.5],
  ],
};

/** The density at the grid point nearest x. */
function densityAt(curve: { grid: number[]; density: number[] }, x: number): number {
  let best = 0;
  curve.grid.forEach((g, i) => {
    if (Math.abs(g - x) < Math.abs(curve.grid[best]! - x)) best = i;
  });
  return curve.density[best]!;
}

describe('density grid margin', () => {
  it('PyHessian range by default; with a margin the grid holds every peak whole', () => {
    const pyHessian = densityOnGrid(outlier);
    const sigma = Math.sqrt(pyHessian.variance);
    assert.ok(sigma > 0.03, `kernel width ${sigma}`);
    // PyHessian's grid ends 0.01 past the node: a third of a kernel width, the peak cut in half.
    assert.ok(Math.abs(pyHessian.grid[pyHessian.grid.length - 1]! - 100.01) < 1e-9);

    const curve = densityOnGrid(outlier, { margin: 4 });
    assert.equal(curve.variance, pyHessian.variance, 'the same kernels');
    const right = curve.grid[curve.grid.length - 1]!;
    assert.ok(right >= 100 + 3.99 * sigma, `grid reaches ${right}`);
    const peak = densityAt(curve, 100);
    assert.ok(curve.density[curve.density.length - 1]! < 1e-3 * peak, 'the tail has died out');
    // The outlier's mass (0.1) is all on the grid now: integrate around it.
    const dx = curve.grid[1]! - curve.grid[0]!;
    const mass = curve.grid.reduce((s, g, i) => (g > 99 ? s + curve.density[i]! * dx : s), 0);
    assert.ok(Math.abs(mass - 0.1) < 2e-3, `mass near the outlier ${mass}`);

    const runs = densityOnGrid(disagreeing, { margin: 4 });
    const top = runs.grid[runs.grid.length - 1]!;
    assert.ok(top >= 12 + 3.99 * Math.sqrt(runs.variance), `two runs: grid reaches ${top}`);
    assert.ok(densityOnGrid(disagreeing).grid.at(-1)! < 12, 'PyHessian misses the 12 peak');
    assert.throws(() => densityOnGrid(outlier, { margin: -1 }), /margin must be a non-negative/);
  });

  it('the plot draws the top peak whole: its right edge is decades below the peak', () => {
    assert.equal(PLOT_MARGIN_WIDTHS, 4);
    for (const quadrature of [outlier, disagreeing]) {
      const svg = spectralDensitySvg(quadrature);
      const d = /class="density" d="([^"]+)"/.exec(svg)![1]!;
      const points = d
        .split(/[ML]/)
        .filter((p) => p.trim() !== '')
        .map((p) => p.trim().split(/\s+/).map(Number) as [number, number]);
      const peakY = Math.min(...points.map(([, y]) => y));
      const [lastX, lastY] = points[points.length - 1]!;
      // SVG y grows downwards: the last point lies far below the highest one.
      assert.ok(lastY - peakY > 60, `right edge at y ${lastY}, peak at ${peakY}`);
      // The top peak is inside the plot, left of its right edge.
      const peakXs = points.filter(([, y]) => y < peakY + 20).map(([x]) => x);
      assert.ok(Math.max(...peakXs) < lastX - 1, 'a peak near the right edge is not cut off');
    }
  });
});
