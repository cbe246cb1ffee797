/**
 * useBackend and availableBackends in a page: webgl (the browser default) and webgpu are
 * registered and selectable, an unknown name gets one line, and wasm without its .wasm files
 * fails loudly with the setWasmPaths hint instead of leaving the page on webgl unnoticed.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openTestPage, type TestPage } from './page.js';
import { harnessOf } from './harness/client.js';

const ENTRY = new URL('./harness/entry.ts', import.meta.url).pathname;

describe('backends in Chromium, the .wasm files not served', () => {
  let page: TestPage;
  before(async () => {
    page = await openTestPage(ENTRY, { wasmFiles: false });
  });
  after(() => page?.close());

  it('lists and selects webgl, webgpu and cpu', async () => {
    const call = harnessOf(page.page);
    const names = await call('availableBackends');
    for (const b of ['webgl', 'webgpu', 'wasm', 'cpu'])
      assert.ok(names.includes(b), names.join(', '));
    for (const b of ['webgl', 'webgpu', 'cpu']) assert.equal(await call('useBackend', b), b);
  });

  it('names an unknown backend', async () => {
    const call = harnessOf(page.page);
    await assert.rejects(
      call('useBackend', 'nope'),
      /Unknown backend 'nope'; registered: webgpu, webgl, wasm, cpu/,
    );
  });

  it('says to call setWasmPaths when wasm cannot start, and stays on the backend it was on', async () => {
    const call = harnessOf(page.page);
    assert.equal(await call('useBackend', 'webgl'), 'webgl');
    await assert.rejects(
      call('useBackend', 'wasm'),
      /could not initialise the 'wasm' backend; .*setWasmPaths/,
    );
    assert.equal(await call('currentBackend'), 'webgl');
  });
});
