import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { prepareBackend } from '../../src/cli/backend.js';
import { memoryIo } from '../../src/cli/output.js';
import {
  disableNativeKernels,
  enableNativeKernels,
  nativeKernelOptions,
  nativeKernelStatus,
  stepGraphsStatus,
  type NativeKernelOptions,
} from '../../src/native/index.js';
import {
  loadOnnxRuntime,
  ONNX_RUNTIME_NODE_VERSION,
  reloadOnnxRuntimeForTesting,
} from '../../src/native/onnx-runtime.js';
import { defaultThreads } from '../../src/native/threads.js';

const unavailable = loadOnnxRuntime() == null ? 'onnxruntime-node is not installed' : false;

describe('the CLI backend choice', () => {
  before(() => disableNativeKernels());
  after(() => {
    reloadOnnxRuntimeForTesting();
    disableNativeKernels();
  });

  it(
    'without --backend: cpu with the native kernels on the default threads, silently',
    { skip: unavailable },
    async () => {
      const io = memoryIo();
      const choice = await prepareBackend(undefined, undefined, io);
      const threads = defaultThreads(); // src/native/threads.ts (npm test pins 1)
      assert.deepEqual(choice, { backend: 'cpu', native: true, stepGraphs: 'all', threads });
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
    assert.deepEqual(choice, { backend: 'wasm', native: false, stepGraphs: 'off', threads: null });
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
    assert.deepEqual(await prepareBackend(undefined, false), {
      backend: 'wasm',
      native: false,
      stepGraphs: 'off',
      threads: null,
    });
    assert.deepEqual(await prepareBackend('cpu'), {
      backend: 'cpu',
      native: false,
      stepGraphs: 'off',
      threads: null,
    });
    assert.equal(tf.getBackend(), 'cpu');
    assert.equal(nativeKernelStatus().enabled, false);
  });

  it(
    'turns the native kernels off for --backend cpu --no-native',
    { skip: unavailable },
    async () => {
      const on = { backend: 'cpu', native: true, stepGraphs: 'all', threads: defaultThreads() };
      assert.deepEqual(await prepareBackend('cpu', true), on);
      assert.deepEqual(await prepareBackend('cpu'), on);
      assert.deepEqual(await prepareBackend('cpu', false), {
        ...on,
        native: false,
        stepGraphs: 'off',
        threads: null,
      });
      assert.equal(nativeKernelStatus().enabled, false);
    },
  );

  it(
    '--step-graphs chooses the replayed steps, and a later call without it keeps them',
    { skip: unavailable },
    async () => {
      const io = memoryIo();
      const choice = await prepareBackend(undefined, undefined, io, 'adahessian');
      assert.deepEqual(choice, {
        backend: 'cpu',
        native: true,
        stepGraphs: 'adahessian',
        threads: defaultThreads(),
      });
      assert.equal(stepGraphsStatus().firstOrder, false);
      // A run of a set (train-many, a resumed run) prepares again without the flag.
      assert.equal((await prepareBackend('cpu')).stepGraphs, 'adahessian');
      assert.equal((await prepareBackend('cpu', undefined, io, 'all')).stepGraphs, 'all');
      assert.equal(stepGraphsStatus().firstOrder, true);
      assert.equal((await prepareBackend('cpu', true, io, 'off')).stepGraphs, 'off');
      assert.equal(nativeKernelStatus().stepGraphs, false);
      assert.equal(nativeKernelStatus().enabled, true, 'the native kernels stay on');
      assert.equal(io.err(), '');
      disableNativeKernels();
    },
  );

  it('--step-graphs: a bad value and a path without the native kernels are named', async () => {
    await assert.rejects(
      prepareBackend(undefined, undefined, undefined, 'some' as never),
      /--step-graphs 'some' is unknown; expected one of all, adahessian, off\./,
    );
    await assert.rejects(
      prepareBackend(undefined, false, undefined, 'all'),
      /--step-graphs all: step graphs need the cpu backend with the native kernels, and this command runs without them \(--no-native\)/,
    );
    await assert.rejects(prepareBackend('wasm', true, undefined, 'adahessian'), /runs on wasm;/);
    // Without onnxruntime-node: one line saying why, not the fallback's note before it.
    reloadOnnxRuntimeForTesting('onnxruntime-node-that-is-not-installed');
    const io = memoryIo();
    await assert.rejects(
      prepareBackend(undefined, undefined, io, 'all'),
      /--step-graphs all: .* runs on wasm without them; drop --step-graphs or give --step-graphs off\. The native kernels are not available: .*not installed.*npm install onnxruntime-node@1\.30\.0$/,
    );
    assert.equal(io.err(), '');
    reloadOnnxRuntimeForTesting();
    assert.deepEqual(await prepareBackend('wasm', false, undefined, 'off'), {
      backend: 'wasm',
      native: false,
      stepGraphs: 'off',
      threads: null,
    });
  });

  it(
    "changing threads or step graphs keeps every other option the kernels' caller gave",
    { skip: unavailable },
    async () => {
      // A library caller's own options, none of them the defaults.
      const given: NativeKernelOptions = {
        backends: ['cpu'],
        threads: 1,
        cacheSize: 7,
        sessionArenas: true,
        kernels: ['BatchMatMul', 'Conv2D'],
        fusedOptimizerUpdate: false,
        outputPoolBytes: 0,
        stepGraphs: 'adahessian',
        stepGraphMemoryArena: true,
      };
      enableNativeKernels(given);
      await prepareBackend('cpu', true, undefined, undefined, 2);
      assert.deepEqual(nativeKernelOptions(), { ...given, threads: 2 });
      assert.deepEqual(nativeKernelStatus().kernels, ['BatchMatMul', 'Conv2D']);
      await prepareBackend('cpu', undefined, undefined, 'all');
      assert.deepEqual(nativeKernelOptions(), { ...given, threads: 2, stepGraphs: 'all' });
      // The fastest path (no --backend) adjusts the kernels already on the same way.
      await prepareBackend(undefined, undefined, memoryIo(), 'off', 1);
      assert.deepEqual(nativeKernelOptions(), { ...given, stepGraphs: false });
      assert.equal(nativeKernelStatus().stepGraphs, false);
      // Kernels on for wasm, --native on cpu: the other backend, the rest kept.
      enableNativeKernels({ ...given, backends: ['wasm'] });
      await prepareBackend('cpu', true);
      assert.deepEqual(nativeKernelOptions(), given);
      assert.deepEqual(nativeKernelStatus().backends, ['cpu']);
      disableNativeKernels();
    },
  );

  it('the install hint names the onnxruntime-node version package.json lists', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    assert.equal(pkg.optionalDependencies['onnxruntime-node'], ONNX_RUNTIME_NODE_VERSION);
  });
});
