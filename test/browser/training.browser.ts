/**
 * AdaHessian trains through model.fit in Chromium on cpu, webgl and wasm: an MLP, the small CNN,
 * and a model with dilated convs (fused and unfused) and batch normalization. The losses must
 * equal cpu's (same seeds and data) to float32 noise and fall, and nothing may leak. On webgpu
 * (SwiftShader, slow) the MLP and the small CNN: its 8 variables are what webgpu's AddN got wrong
 * before addAll. Prints the time per step of the last epoch (the first compiles the shaders), for
 * the README's table: take those from this file run alone (`node --import tsx --test
 * test/browser/training.browser.ts`), as `npm run test:browser` runs two files at a time.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openTestPage, type TestPage } from './page.js';
import { harnessOf } from './harness/client.js';

const ENTRY = new URL('./harness/entry.ts', import.meta.url).pathname;
const MODELS = ['mlp', 'small-cnn', 'bn-dilated'] as const;
const EPOCHS = 2;
const BATCHES = 3;

describe('AdaHessian training in Chromium', () => {
  let page: TestPage;
  before(async () => {
    page = await openTestPage(ENTRY, { timeoutMs: 5 * 60_000 });
  });
  after(() => page?.close());

  /** Losses per model on cpu, the reference the other backends must match. */
  const reference = new Map<string, number[]>();

  for (const backend of ['cpu', 'webgl', 'wasm', 'webgpu'] as const) {
    const models = backend === 'webgpu' ? (['mlp', 'small-cnn'] as const) : MODELS;
    it(`trains ${models.join(', ')} on ${backend}`, async (t) => {
      const call = harnessOf(page.page);
      assert.equal(await call('useBackend', backend), backend);
      assert.equal(await call('refusal'), 'ok');
      const timings: string[] = [];
      for (const model of models) {
        const { losses, msPerStep, leaked } = await call('train', model, EPOCHS, BATCHES);
        const what = `${model} on ${backend}: losses ${losses.join(', ')}`;
        assert.ok(losses.every(Number.isFinite), what);
        assert.ok(losses.at(-1)! < losses[0]!, `${what}: did not fall`);
        if (backend === 'cpu') reference.set(model, losses);
        const cpu = reference.get(model);
        assert.ok(cpu != null, 'cpu runs first');
        losses.forEach((l, i) =>
          assert.ok(
            Math.abs(l - cpu[i]!) <= 1e-3 * Math.abs(cpu[i]!),
            `${what}; cpu ${cpu.join(', ')}`,
          ),
        );
        assert.equal(leaked, 0, `${model} on ${backend} leaked ${leaked} tensors`);
        timings.push(`${model} ${msPerStep.toFixed(1)} ms/step`);
      }
      t.diagnostic(`${backend}: ${timings.join('; ')}`);
    });
  }

  it('logged no console errors', () => {
    assert.deepEqual(page.consoleErrors, []);
  });
});
