import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { mallocKeepsFreedMemory } from '../../src/native/malloc-tuning.js';

const tuned = { MALLOC_TRIM_THRESHOLD_: '1073741824', MALLOC_MMAP_THRESHOLD_: '33554432' };

test('glibc keeps freed memory only with both thresholds at least the measured ones, on Linux', () => {
  assert.equal(mallocKeepsFreedMemory(tuned, 'linux'), true);
  assert.equal(
    mallocKeepsFreedMemory({ ...tuned, MALLOC_TRIM_THRESHOLD_: '4294967296' }, 'linux'),
    true,
  );
  assert.equal(mallocKeepsFreedMemory({}, 'linux'), false);
  // A trim threshold alone fixes the mmap threshold at 128 KiB: large tensors are unmapped.
  assert.equal(
    mallocKeepsFreedMemory({ MALLOC_TRIM_THRESHOLD_: tuned.MALLOC_TRIM_THRESHOLD_ }, 'linux'),
    false,
  );
  assert.equal(
    mallocKeepsFreedMemory({ ...tuned, MALLOC_TRIM_THRESHOLD_: '67108864' }, 'linux'),
    false,
  );
  assert.equal(
    mallocKeepsFreedMemory({ ...tuned, MALLOC_MMAP_THRESHOLD_: '131072' }, 'linux'),
    false,
  );
  assert.equal(mallocKeepsFreedMemory({ ...tuned, MALLOC_MMAP_THRESHOLD_: 'big' }, 'linux'), false);
  assert.equal(mallocKeepsFreedMemory(tuned, 'darwin'), false);
});
