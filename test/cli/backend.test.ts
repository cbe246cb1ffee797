import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { prepareBackend } from '../../src/cli/backend.js';
import { memoryIo } from '../../src/cli/output.js';
import { disableNativeKernels, nativeKernelStatus } from '../../src/native/index.js';
import {
  loadOnnxRuntime,
  ONNX_RUNTIME_NODE_VERSION,
  reloadOnnxRuntimeForTesting,
} from '../../src/native/onnx-runtime.js';

const unavailable = loadOnnxRuntime() == null ? 'onnxruntime-node is not installed' : false;

describe('the CLI backend choice', () => {
  before(() => disableNativeKernels());
  after(() => {
    reloadOnnxRuntimeForTesting();
    disableNativeKernels();
  });

  it(
    'without --backend: cpu with the native kernels, silently',
    { skip: unavailable },
    async () => {
      const io = memoryIo();
      const choice = await prepareBackend(undefined, undefined, io);
      assert.deepEqual(choice, { backend: 'cpu', native: true });
      assert.equal(tf.getBackend(), 'cpu');
      assert.equal(nativeKernelStatus().enabled, true);
      assert.equal(io.err(), '');
      disableNativeKernels();
    },
  );

  it('without onnxruntime-node: wasm, and one line with the command that installs it', async () => {
    reloadOnnxRuntimeForTesting('onnxruntime-node-that-is-not-installed');
    const io = memoryIo();
    const choice = await prepareBackend(undefined, undefined, io);
    reloadOnnxRuntimeForTesting();
    assert.deepEqual(choice, { backend: 'wasm', native: false });
    assert.equal(tf.getBackend(), 'wasm');
    const lines = io.err().trimEnd().split('\n');
    assert.equal(lines.length, 1);
    assert.match(
      lines[0]!,
      /^Running on wasm, without the native kernels: .*not installed.*echo onnxruntime-node-install=skip >> \.npmrc && npm install onnxruntime-node@1\.30\.0$/,
    );
  });

  it('--native without onnxruntime-node is an error naming the command', async () => {
    reloadOnnxRuntimeForTesting('onnxruntime-node-that-is-not-installed');
    await assert.rejects(
      prepareBackend(undefined, true),
      /--native: .*npm install onnxruntime-node@1\.30\.0/,
    );
    reloadOnnxRuntimeForTesting();
  });

  it('--no-native runs on wasm; --backend is taken as given', async () => {
    assert.deepEqual(await prepareBackend(undefined, false), { backend: 'wasm', native: false });
    assert.deepEqual(await prepareBackend('cpu'), { backend: 'cpu', native: false });
    assert.equal(tf.getBackend(), 'cpu');
    assert.equal(nativeKernelStatus().enabled, false);
  });

  it(
    'turns the native kernels off for --backend cpu --no-native',
    { skip: unavailable },
    async () => {
      assert.deepEqual(await prepareBackend('cpu', true), { backend: 'cpu', native: true });
      assert.deepEqual(await prepareBackend('cpu'), { backend: 'cpu', native: true });
      assert.deepEqual(await prepareBackend('cpu', false), { backend: 'cpu', native: false });
      assert.equal(nativeKernelStatus().enabled, false);
    },
  );

  it('the install hint names the onnxruntime-node version package.json lists', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    assert.equal(pkg.optionalDependencies['onnxruntime-node'], ONNX_RUNTIME_NODE_VERSION);
  });
});
