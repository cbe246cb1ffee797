/**
 * The coverage suite (checkSecondOrder) in headless Chromium: whole on webgl and wasm, and on
 * webgpu (SwiftShader's adapter, slower) the first two cases of every group, the models (8 to 40
 * variables: webgpu's AddN was wrong past 7 inputs) included. Each backend gets its own page.
 * Run with `npm run test:browser`; ADAHESSIAN_WEBGPU_FULL=1 runs the whole suite on webgpu too
 * (minutes more on SwiftShader, so not in CI).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openTestPage, type TestPage } from './page.js';
import { harnessOf } from './harness/client.js';

const ENTRY = new URL('./harness/entry.ts', import.meta.url).pathname;
const PAGE_TIMEOUT_MS = 8 * 60_000;

/** The first `perGroup` case names of every group, in suite order. */
function sample(cases: { name: string; group: string }[], perGroup: number): string[] {
  const taken = new Map<string, number>();
  return cases
    .filter(({ group }) => {
      const n = taken.get(group) ?? 0;
      taken.set(group, n + 1);
      return n < perGroup;
    })
    .map(({ name }) => name);
}

for (const [backend, perGroup] of [
  ['webgl', Infinity],
  ['wasm', Infinity],
  ['webgpu', process.env.ADAHESSIAN_WEBGPU_FULL === '1' ? Infinity : 2],
] as const) {
  describe(`coverage suite on ${backend} in Chromium`, () => {
    let page: TestPage;
    before(async () => {
      page = await openTestPage(ENTRY, { timeoutMs: PAGE_TIMEOUT_MS });
    });
    after(() => page?.close());

    const which =
      perGroup === Infinity ? 'every case' : `the first ${perGroup} cases of each group`;
    it(`${which} ${perGroup === Infinity ? 'passes' : 'pass'}, leaking nothing`, async (t) => {
      const call = harnessOf(page.page);
      assert.equal(await call('useBackend', backend), backend);
      if (backend === 'webgpu') t.diagnostic(`adapter: ${await call('adapterInfo')}`);
      // Verified (SECOND_ORDER_VERIFIED_BACKENDS): gradAndHvp computes without an opt-in.
      assert.equal(await call('refusal'), 'ok');
      const all = await call('cases');
      const names = perGroup === Infinity ? undefined : sample(all, perGroup);
      const before = await call('numTensors');
      const results = await call('coverage', names);
      assert.equal(await call('numTensors'), before, 'tensors leaked by the cases');
      const failing = results
        .filter((r) => !r.pass)
        .map((r) => `${r.name}: ${r.error ?? r.relError}`);
      assert.deepEqual(failing, []);
      const expected = names?.length ?? all.length;
      // A case may skip a backend (skipBackends); no more than a few.
      assert.ok(results.length >= expected - 3, `only ${results.length} of ${expected} cases ran`);
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
