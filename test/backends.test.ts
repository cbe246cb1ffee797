/**
 * useBackend takes any registered backend (webgl and webgpu in a browser, tested in
 * test/browser/), availableBackends lists the registered ones, and a bad name gets one line.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { availableBackends, useBackend } from '../src/backends.js';
import { registerCpuCopy } from './cpu-copy-backend.js';

describe('useBackend and availableBackends', () => {
  after(() => useBackend('cpu'));

  it('lists the registered backends: cpu and wasm on Node, no webgl', async () => {
    const names = await availableBackends();
    assert.ok(names.includes('cpu') && names.includes('wasm'), names.join(', '));
    assert.ok(!names.includes('webgl'), 'TF.js registers webgl only in a browser');
  });

  it('switches to any registered backend, not only the ones it knows by name', async () => {
    registerCpuCopy('cpu-copy');
    assert.ok((await availableBackends()).includes('cpu-copy'));
    await useBackend('cpu-copy');
    assert.equal(tf.getBackend(), 'cpu-copy');
    await useBackend('cpu');
    assert.equal(tf.getBackend(), 'cpu');
  });

  it('names an unknown backend and the registered ones in one line, and stays where it was', async () => {
    await useBackend('cpu');
    for (const [name, hint] of [
      ['nope', /^Unknown backend 'nope'; registered: .*cpu/],
      ['webgl', /only in a browser/],
      ['webgpu', /@tensorflow\/tfjs-backend-webgpu/],
    ] as const) {
      await assert.rejects(
        useBackend(name),
        (e: Error) => hint.test(e.message) && !e.message.includes('\n'),
      );
      assert.equal(tf.getBackend(), 'cpu');
    }
    await assert.rejects(useBackend('' as string), /expected a backend name/);
  });

  it("explains 'tensorflow' when @tensorflow/tfjs-node is not installed", async (t) => {
    if (tf.findBackendFactory('tensorflow') != null) return t.skip('tfjs-node is installed here');
    let installed = true;
    try {
      await import('@tensorflow/tfjs-node' as string);
    } catch {
      installed = false;
    }
    if (installed) return t.skip('tfjs-node is installed here');
    await assert.rejects(useBackend('tensorflow'), /optional package @tensorflow\/tfjs-node/);
  });
});
