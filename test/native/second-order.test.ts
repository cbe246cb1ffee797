/**
 * Second-order autodiff is unchanged with the native kernels on: every coverage case of
 * checkSecondOrder() (finite differences against H v) gives the same verdict as with
 * TF.js's own kernels, and the native kernels really ran inside those products.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkSecondOrder } from '../../src/index.js';
import { onBackend } from '../helpers.js';
import {
  disableNativeKernels,
  enableNativeKernels,
  nativeKernelStatus,
} from '../../src/native/index.js';
import { onnxRuntimeUnavailableReason } from '../../src/native/onnx-runtime.js';

const unavailable = onnxRuntimeUnavailableReason();
if (unavailable !== '') console.log(`# native second-order test skipped: ${unavailable}`);

describe('checkSecondOrder with native kernels (cpu)', { skip: unavailable || false }, () => {
  before(async () => onBackend('cpu'));
  after(() => disableNativeKernels());

  it('every coverage case passes as it does with TF.js kernels', async () => {
    disableNativeKernels();
    const stock = await checkSecondOrder();
    enableNativeKernels();
    const native = await checkSecondOrder();
    const { nativeCalls } = nativeKernelStatus();
    disableNativeKernels();
    assert.ok(nativeCalls > 0, 'the native kernels never ran');
    assert.equal(native.length, stock.length);
    const failures: string[] = [];
    native.forEach((r, i) => {
      const s = stock[i]!;
      assert.equal(r.name, s.name);
      if (r.pass !== s.pass) {
        failures.push(
          `${r.name}: native ${r.relError} (${r.error ?? 'ok'}) vs TF.js ${s.relError}`,
        );
      }
    });
    assert.deepEqual(failures, []);
    assert.ok(native.filter((r) => r.pass).length > 0);
  });
});
