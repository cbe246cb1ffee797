/**
 * A full wasm heap is a clear error at the allocation (src/wasm-heap.ts), not a later
 * "memory access out of bounds": asking for nearly 4 GiB fails at once, without growing the
 * heap, and leaves the backend working.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '../src/index.js';
import { WasmHeapFullError } from '../src/wasm-heap.js';
import { onBackend } from './helpers.js';

describe('wasm heap guard', () => {
  before(() => onBackend('wasm'));

  it('a tensor larger than the heap can hold throws WasmHeapFullError, and nothing leaks', () => {
    const start = tf.memory().numTensors;
    // 4,294,967,292 bytes: under 2^32 (so the size reaches malloc intact), over the 4 GiB - 64 KiB limit.
    assert.throws(
      () => tf.fill([2 ** 30 - 1], 1),
      (e: unknown) =>
        e instanceof WasmHeapFullError &&
        /memory is full: 4096 MiB more asked for, with the heap at \d+ MiB \(4 GiB at most, 256 MiB of it kept for the kernels\)\. Use a smaller batch size/.test(
          e.message,
        ),
    );
    assert.equal(tf.memory().numTensors, start);
    const sum = tf.tidy(() => Array.from(tf.add(tf.tensor([1, 2]), tf.tensor([3, 4])).dataSync()));
    assert.deepEqual(sum, [4, 6]);
    // Still guarded after ordinary allocations (emscripten's malloc stub replaces itself).
    assert.throws(() => tf.fill([2 ** 30 - 1], 1), WasmHeapFullError);
    assert.equal(tf.memory().numTensors, start);
  });
});
