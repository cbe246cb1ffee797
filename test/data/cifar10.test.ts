import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import {
  CIFAR10_RECORD_BYTES,
  datasetToTensors,
  loadCifar10,
  parseCifar10,
  readCifar10File,
} from '../../src/node.js';
import { onBackend } from '../helpers.js';

/**
 * A record whose pixel (row, col) in channel c holds (row * 32 + col + 50 c) % 256, so the
 * NHWC position of every byte can be checked; `shift` makes records differ.
 */
function record(label: number, shift = 0): Uint8Array {
  const r = new Uint8Array(CIFAR10_RECORD_BYTES);
  r[0] = label;
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < 1024; p++) r[1 + c * 1024 + p] = (p + 50 * c + shift) % 256;
  }
  return r;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

describe('CIFAR-10 binary reader', () => {
  let root: string;
  before(async () => {
    await onBackend('cpu');
    root = mkdtempSync(join(tmpdir(), 'adahessian-cifar-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('reads labels and turns CHW records into NHWC images', () => {
    const set = parseCifar10(concat(record(3), record(9, 7)));
    assert.equal(set.count, 2);
    assert.deepEqual([set.height, set.width, set.channels], [32, 32, 3]);
    assert.deepEqual(Array.from(set.labels), [3, 9]);
    assert.equal(set.images.length, 2 * 3072);
    // Image 0, row 1, col 2 (pixel 34): channels 34, 84, 134.
    const at = (n: number, row: number, col: number, c: number) =>
      set.images[n * 3072 + (row * 32 + col) * 3 + c];
    assert.deepEqual([at(0, 1, 2, 0), at(0, 1, 2, 1), at(0, 1, 2, 2)], [34, 84, 134]);
    assert.deepEqual([at(1, 31, 31, 0), at(1, 31, 31, 2)], [(1023 + 7) % 256, (1023 + 100 + 7) % 256]);
  });

  it('gives NHWC float tensors in [0, 1] with one-hot labels', () => {
    const set = parseCifar10(concat(record(3), record(0)));
    const before = tf.memory().numTensors;
    const { x, y } = datasetToTensors(set);
    assert.deepEqual(x.shape, [2, 32, 32, 3]);
    assert.deepEqual(y.shape, [2, 10]);
    const pixel = tf.tidy(() => Array.from(x.slice([0, 1, 2, 0], [1, 1, 1, 3]).dataSync()));
    pixel.forEach((v, c) => assert.ok(Math.abs(v - [34, 84, 134][c]! / 255) < 1e-7));
    assert.deepEqual(Array.from(y.dataSync()).indexOf(1), 3);
    tf.dispose([x, y]);
    assert.equal(tf.memory().numTensors, before);
  });

  it('names wrong sizes, gzip, empty input and bad labels', () => {
    const two = concat(record(1), record(2));
    assert.throws(() => parseCifar10(two.subarray(0, two.length - 10), 'b.bin'), {
      name: 'Cifar10FormatError',
      message:
        'b.bin: size 6136 bytes is not a whole number of 3073-byte records (1 label + 3072 image bytes): ' +
        '1 records and 3063 bytes left over. Truncated, or not the binary version?',
    });
    assert.throws(() => parseCifar10(new Uint8Array(0), 'e.bin'), /e.bin: is empty/);
    assert.throws(() => parseCifar10(gzipSync(two), 'g.bin'), /g.bin: is gzip-compressed/);
    assert.throws(() => parseCifar10(concat(record(1), record(12)), 'l.bin'), {
      message: /l.bin: record 1 \(byte 3073\) has label 12; CIFAR-10 labels are 0-9/,
    });
  });

  it('loads a split from a directory, across files, with limit', () => {
    const dir = join(root, 'batches');
    mkdirSync(dir);
    for (let i = 1; i <= 5; i++) {
      writeFileSync(join(dir, `data_batch_${i}.bin`), concat(record(i), record(i, 1)));
    }
    writeFileSync(join(dir, 'test_batch.bin'), record(0));
    const train = loadCifar10(dir, { split: 'train' });
    assert.equal(train.count, 10);
    assert.deepEqual(Array.from(train.labels), [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
    assert.equal(train.images.length, 10 * 3072);
    assert.equal(train.images[3 * 3072], 1, 'record 3 is the shifted record of file 2');
    const three = loadCifar10(dir, { split: 'train', limit: 3 });
    assert.deepEqual(Array.from(three.labels), [1, 1, 2]);
    assert.equal(loadCifar10(dir, { split: 'test' }).count, 1);
    assert.equal(readCifar10File(join(dir, 'data_batch_2.bin'), { limit: 1 }).count, 1);
  });

  it('names a missing directory, a missing file and a malformed file', () => {
    const missing = join(root, 'nope');
    assert.throws(() => loadCifar10(missing, { split: 'test' }), {
      message: `CIFAR-10 directory ${missing} does not exist or is not a directory.`,
    });
    const dir = join(root, 'partial');
    mkdirSync(dir);
    writeFileSync(join(dir, 'data_batch_1.bin'), record(1));
    assert.throws(() => loadCifar10(dir, { split: 'train' }), {
      message: `CIFAR-10 file ${join(dir, 'data_batch_2.bin')} not found (the train split needs data_batch_1.bin, data_batch_2.bin, data_batch_3.bin, data_batch_4.bin, data_batch_5.bin).`,
    });
    writeFileSync(join(dir, 'test_batch.bin'), record(1).subarray(0, 100));
    assert.throws(() => loadCifar10(dir, { split: 'test' }), {
      message: new RegExp(`^${join(dir, 'test_batch.bin').replace(/[.\\]/g, '\\$&')}: size 100 bytes`),
    });
  });
});
