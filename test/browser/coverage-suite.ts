/**
 * The coverage suite (checkSecondOrder) in headless Chromium, whole, on one backend in its own
 * page: coverage.browser.ts runs it on webgl and wasm, coverage-webgpu.browser.ts on webgpu
 * (SwiftShader's adapter; the models, with 8 to 40 variables, caught webgpu's AddN being wrong
 * past 7 inputs). Two files so that `npm run test:browser` (two files at a time) runs the two
 * long ones, webgl and webgpu (about 2 minutes each on SwiftShader), side by side.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openTestPage, type TestPage } from './page.js';
import { harnessOf } from './harness/client.js';

const ENTRY = new URL('./harness/entry.ts', import.meta.url).pathname;
const PAGE_TIMEOUT_MS = 8 * 60_000;

/** Registers the suite's test on `backend` (a describe with its own page). */
export function coverageSuite(backend: 'webgl' | 'wasm' | 'webgpu'): void {
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
