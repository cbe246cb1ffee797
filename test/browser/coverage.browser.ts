/**
 * The coverage suite (checkSecondOrder) in headless Chromium, whole, on webgl, wasm and webgpu
 * (SwiftShader's adapter; the models, with 8 to 40 variables, caught webgpu's AddN being wrong
 * past 7 inputs). Each backend gets its own page. Run with `npm run test:browser`.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openTestPage, type TestPage } from './page.js';
import { harnessOf } from './harness/client.js';

const ENTRY = new URL('./harness/entry.ts', import.meta.url).pathname;
const PAGE_TIMEOUT_MS = 8 * 60_000;

for (const backend of ['webgl', 'wasm', 'webgpu'] as const) {
  describe(`coverage suite on ${backend} in Chromium`, () => {
    let page: TestPage;
    before(async () => {
      page = await openTestPage(ENTRY, { timeoutMs: PAGE_TIMEOUT_MS });
    });
    after(() => page?.close());

    it('every case passes, leaking nothing', async (t) => {
      const call = harnessOf(page.page);
      assert.equal(await call('useBackend', backend), backend);
      if (backend === 'webgpu') t.diagnostic(`adapter: ${await call('adapterInfo')}`);
      // Verified (SECOND_ORDER_VERIFIED_BACKENDS): gradAndHvp computes without an opt-in.
      assert.equal(await call('refusal'), 'ok');
      const all = await call('cases');
      const before = await call('numTensors');
      const results = await call('coverage');
      assert.equal(await call('numTensors'), before, 'tensors leaked by the cases');
      const failing = results
        .filter((r) => !r.pass)
        .map((r) => `${r.name}: ${r.error ?? r.relError}`);
      assert.deepEqual(failing, []);
      // A case may skip a backend (skipBackends); no more than a few.
      assert.ok(
        results.length >= all.length - 3,
        `only ${results.length} of ${all.length} cases ran`,
      );
      const slowest = [...results].sort((a, b) => b.ms - a.ms).slice(0, 3);
      t.diagnostic(
        `${results.filter((r) => r.pass).length} of ${results.length} cases passed on ${backend} in ` +
          `${results.reduce((s, r) => s + r.ms, 0)} ms; slowest: ` +
          slowest.map((r) => `${r.name} ${r.ms} ms`).join('; '),
      );
      assert.deepEqual(page.consoleErrors, []);
    });
  });
}
