import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  contourSegments,
  landscape1dSvg,
  landscape2dSvg,
  layerCurvatureSvg,
  spectralDensitySvg,
  PLOT_MARGIN_WIDTHS,
} from '../../src/report/index.js';
import { densityOnGrid } from '../../src/estimators/index.js';
import { niceTicks, formatNumber, escapeXml } from '../../src/report/svg.js';
import type { PerLayerReport } from '../../src/analysis/index.js';

/** A strict-enough well-formedness check: balanced tags, quoted attributes, no NaN/undefined. */
function assertWellFormedSvg(svg: string): void {
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'), 'starts with an svg root');
  assert.ok(!/NaN|undefined|Infinity/.test(svg), 'no NaN, undefined or Infinity');
  const stack: string[] = [];
  const tag = /<(\/?)([a-zA-Z][\w-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let consumed = 0;
  for (const m of svg.matchAll(tag)) {
    const between = svg.slice(consumed, m.index);
    assert.ok(
      !between.includes('<') && !/&(?!amp;|lt;|gt;|quot;|apos;)/.test(between),
      `stray markup before ${m[0]}`,
    );
    consumed = m.index! + m[0].length;
    const [, closing, name, , selfClosing] = m;
    if (closing) assert.equal(stack.pop(), name, `closing </${name}>`);
    else if (!selfClosing) stack.push(name!);
  }
  assert.deepEqual(stack, [], 'every tag closed');
  assert.equal(svg.slice(consumed).trim(), '', 'nothing after the root');
}

const perLayer: PerLayerReport = {
  by: 'layer',
  trace: 10,
  traceStdError: 1,
  products: 300,
  blocks: [
    {
      name: 'conv<1>',
      variables: ['a', 'b'],
      size: 10,
      trace: 2,
      traceStdError: 0.3,
      topEigenvalue: 1.5,
      topEigenvalueConverged: true,
      noGradient: false,
    },
    {
      name: 'dense & co',
      variables: ['c'],
      size: 5,
      trace: 9,
      traceStdError: 0.5,
      topEigenvalue: 4,
      topEigenvalueConverged: true,
      noGradient: false,
    },
    {
      name: 'negative',
      variables: ['d'],
      size: 5,
      trace: -1,
      traceStdError: 0.2,
      topEigenvalue: -0.5,
      topEigenvalueConverged: true,
      noGradient: false,
    },
    {
      name: 'frozen',
      variables: ['e'],
      size: 5,
      trace: 0,
      traceStdError: 0,
      topEigenvalue: 0,
      topEigenvalueConverged: true,
      noGradient: true,
    },
  ],
};

describe('SVG reports', () => {
  it('spectral density: log-scaled density axis, PyHessian grid, spikes kept, markers', () => {
    const quadrature = { nodes: [[-0.5, 0, 0.1, 20]], weights: [[0.3, 0.4, 0.29, 0.01]] };
    const svg = spectralDensitySvg(quadrature, { markers: [20] });
    assertWellFormedSvg(svg);
    assert.match(svg, /Density \(log scale\)/);
    assert.match(svg, /Eigenvalue/);
    // Decade ticks on the density axis, down to PyHessian's 1e-7 floor.
    assert.match(svg, />1e-7</);
    assert.match(svg, />1e-1</);
    assert.match(svg, /class="marker"/);
    // The isolated eigenvalue at 20 is one Gaussian spike narrower than a pixel column's
    // worth of grid points; decimation must keep its peak.
    // The plot's grid: PyHessian's, reaching 4 kernel widths past the extreme nodes.
    const grid = densityOnGrid(quadrature, { margin: PLOT_MARGIN_WIDTHS });
    const peak = Math.log10(Math.max(...grid.density.slice(9000)) + 1e-7);
    const path = svg.match(/class="density" d="([^"]+)"/)![1]!;
    const ys = [...path.matchAll(/[ML][\d.-]+ ([\d.-]+)/g)].map((m) => Number(m[1]));
    assert.ok(ys.length < 4 * 640, `decimated to ${ys.length} points`);
    const yMax = Math.ceil(Math.max(...grid.density.map((d) => Math.log10(d + 1e-7))));
    const top = 40;
    const height = 420 - 100;
    const expected = top + ((yMax - peak) / (yMax + 7)) * height;
    assert.ok(
      ys.some((y) => Math.abs(y - expected) < 1),
      'the spike at 20 reaches its peak on the chart',
    );
    assert.equal(spectralDensitySvg(quadrature, { markers: [20] }), svg, 'deterministic');
  });

  it('per-layer curvature: bars sorted by value, names escaped, negatives and no-gradient marked', () => {
    const svg = layerCurvatureSvg(perLayer);
    assertWellFormedSvg(svg);
    assert.match(svg, /Hessian trace per layer/);
    assert.match(svg, /conv&lt;1&gt;/);
    assert.match(svg, /dense &amp; co/);
    assert.match(svg, /no gradient/);
    const names = [...svg.matchAll(/text-anchor="end">([^<]+)</g)].map((m) => m[1]);
    assert.deepEqual(names, ['dense &amp; co', 'conv&lt;1&gt;', 'frozen', 'negative']);
    assert.match(svg, /fill="#d62728"/, 'a negative bar is red');
    const eig = layerCurvatureSvg(perLayer, { metric: 'topEigenvalue', order: 'model' });
    assertWellFormedSvg(eig);
    assert.match(eig, /Top Hessian eigenvalue per layer/);
    const inModelOrder = [...eig.matchAll(/text-anchor="end">([^<]+)</g)].map((m) => m[1]);
    assert.deepEqual(inModelOrder, ['conv&lt;1&gt;', 'dense &amp; co', 'negative', 'frozen']);
  });

  it('loss landscapes: a 1-D curve and a 2-D heat map with contours and a colour bar', () => {
    const alphas = [-1, -0.5, 0, 0.5, 1];
    const one = landscape1dSvg({ alphas, losses: alphas.map((a) => 1 + a * a) });
    assertWellFormedSvg(one);
    assert.equal((one.match(/<circle /g) ?? []).length, 5);
    const losses = alphas.map((a) => alphas.map((b) => a * a + 2 * b * b));
    const two = landscape2dSvg({ alphas, betas: alphas, losses });
    assertWellFormedSvg(two);
    assert.equal((two.match(/<rect [^>]*><title>/g) ?? []).length, 25);
    assert.match(two, /class="contours"/);
    assert.match(two, /class="colorbar"/);
    // A flat landscape must not divide by zero.
    assertWellFormedSvg(
      landscape2dSvg({ alphas, betas: alphas, losses: losses.map((r) => r.map(() => 2)) }),
    );
    assertWellFormedSvg(landscape1dSvg({ alphas, losses: alphas.map(() => 2) }));
  });

  it('contour segments lie on the level set of a linear surface', () => {
    const xs = [0, 1, 2];
    const values = xs.map((x) => xs.map((y) => x + y));
    const segments = contourSegments(xs, xs, values, 1.5);
    assert.ok(segments.length >= 2, 'segments found');
    for (const [p, q] of segments) {
      assert.ok(
        Math.abs(p[0] + p[1] - 1.5) < 1e-12 && Math.abs(q[0] + q[1] - 1.5) < 1e-12,
        'on x + y = 1.5',
      );
    }
  });

  it('helpers: nice ticks, number labels, escaping', () => {
    assert.deepEqual(niceTicks(0, 1, 6), [0, 0.2, 0.4, 0.6, 0.8, 1]);
    assert.deepEqual(niceTicks(-3, 7, 6), [-2, 0, 2, 4, 6]);
    assert.deepEqual(niceTicks(2, 2), [2]);
    assert.equal(formatNumber(0.25), '0.25');
    assert.equal(formatNumber(123456), '1.23e5');
    assert.equal(formatNumber(1e-7), '1e-7');
    assert.equal(escapeXml(`<a & 'b'>`), '&lt;a &amp; &apos;b&apos;&gt;');
  });
});
