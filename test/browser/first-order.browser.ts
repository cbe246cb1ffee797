/**
 * First order on webgl equals stock TensorFlow.js, as test/autodiff/nn.test.ts and conv.test.ts
 * show on cpu and wasm: the page computes every case's gradient before installing adahessian
 * (stock) and after, in the same page on the same data, and they must agree bit for bit except
 * where we change the summation order (Tile's gradient) or stock cannot differentiate.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openTestPage, type TestPage } from './page.js';
import { harnessOf } from './harness/client.js';

const ENTRY = new URL('./harness/entry.ts', import.meta.url).pathname;

/** Same terms summed in another order (our Tile gradient): equal to float32 rounding. */
const REORDERED_SUMS = [
  'tile rank 2',
  'tile rank 4',
  'broadcastTo rank 4',
  'tf.layers layerNormalization',
];
/**
 * Stock has no gradient for the comparison kernels (we give the zero they have) and none for a
 * rank-5 tile.
 */
const STOCK_CANNOT = ['comparison and logical ops inside tf.where', 'tile rank 5'];

function closeTo(got: number[][], expected: number[][], rel: number): string | null {
  if (got.length !== expected.length) return `${got.length} gradients, stock ${expected.length}`;
  for (let i = 0; i < got.length; i++) {
    const e = expected[i]!;
    const scale = Math.max(...e.map(Math.abs), 1e-30);
    const worst = Math.max(...got[i]!.map((v, j) => Math.abs(v - e[j]!)));
    if (!(worst <= rel * scale)) return `gradient ${i} differs by ${worst} (scale ${scale})`;
  }
  return null;
}

describe('first-order gradients on webgl in Chromium', () => {
  let page: TestPage;
  before(async () => {
    page = await openTestPage(ENTRY, { timeoutMs: 5 * 60_000 });
  });
  after(() => page?.close());

  it('equal stock TensorFlow.js after installing adahessian', async (t) => {
    const call = harnessOf(page.page);
    assert.equal(await call('useBackend', 'webgl'), 'webgl');
    assert.equal(await call('isInstalled'), false, 'stock TF.js to start with');
    const stock = await call('firstOrder');
    await call('install');
    assert.equal(await call('isInstalled'), true);
    const ours = await call('firstOrder');
    const problems: string[] = [];
    let identical = 0;
    for (const [name, expected] of Object.entries(stock)) {
      const got = ours[name]!;
      if ('error' in got) {
        problems.push(`${name}: ours throws ${got.error}`);
        continue;
      }
      if ('error' in expected) {
        if (!STOCK_CANNOT.includes(name)) problems.push(`${name}: stock throws ${expected.error}`);
        continue;
      }
      if (REORDERED_SUMS.includes(name)) {
        const off = closeTo(got, expected, 1e-6);
        if (off != null) problems.push(`${name}: ${off}`);
        continue;
      }
      if (JSON.stringify(got) === JSON.stringify(expected)) identical++;
      else problems.push(`${name}: differs from stock (${closeTo(got, expected, 0) ?? 'shape'})`);
    }
    assert.deepEqual(problems, []);
    t.diagnostic(`${identical} cases bit for bit, ${REORDERED_SUMS.length} to float32 rounding`);
    assert.ok(identical >= 40, `only ${identical} cases compared bit for bit`);
    assert.deepEqual(page.consoleErrors, []);
  });
});
