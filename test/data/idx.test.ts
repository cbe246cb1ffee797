import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { encodeIdx, imageDatasetFromIdx, IdxFormatError, parseIdx } from '../../src/index.js';

/** A crafted IDX header: magic 00 00 type rank, then the dims big-endian. */
function header(type: number, dims: number[]): number[] {
  const out = [0, 0, type, dims.length];
  for (const d of dims) out.push((d >>> 24) & 255, (d >>> 16) & 255, (d >>> 8) & 255, d & 255);
  return out;
}

const bytes = (...parts: number[][]) => Uint8Array.from(parts.flat());

describe('parseIdx', () => {
  it('parses a crafted [2, 3] unsigned-byte array', () => {
    const idx = parseIdx(bytes(header(0x08, [2, 3]), [1, 2, 3, 4, 5, 6]));
    assert.deepEqual(idx.shape, [2, 3]);
    assert.deepEqual(Array.from(idx.data), [1, 2, 3, 4, 5, 6]);
  });

  it('reads dimensions as big-endian uint32 (258 = 0x00000102)', () => {
    const data = new Uint8Array(258).map((_, i) => i & 255);
    const idx = parseIdx(bytes(header(0x08, [258]), Array.from(data)));
    assert.deepEqual(idx.shape, [258]);
    assert.equal(idx.data[257], 1);
  });

  it('round-trips encodeIdx', () => {
    const data = Uint8Array.from({ length: 24 }, (_, i) => 255 - i);
    const encoded = encodeIdx([2, 3, 4], data);
    assert.deepEqual(Array.from(encoded.subarray(0, 4)), [0, 0, 8, 3]);
    const idx = parseIdx(encoded);
    assert.deepEqual(idx.shape, [2, 3, 4]);
    assert.deepEqual(idx.data, data);
  });

  it('tells gzip apart and asks for decompression', () => {
    const gz = gzipSync(encodeIdx([1], Uint8Array.of(7)));
    assert.throws(() => parseIdx(gz, 'x.gz'), {
      name: 'IdxFormatError',
      message: 'x.gz: is gzip-compressed (starts with 1f 8b); decompress it before parsing as IDX.',
    });
  });

  it('names a bad magic number', () => {
    assert.throws(() => parseIdx(bytes([1, 0, 8, 1, 0, 0, 0, 1, 5]), 'f'), {
      message: /^f: bad IDX magic number 01 00 08 01: the first two bytes must be zero/,
    });
    assert.throws(() => parseIdx(bytes(header(0x42, [1]), [5])), {
      message: /bad IDX magic number 00 00 42 01: unknown element type 0x42/,
    });
  });

  it('names a known but unsupported element type', () => {
    assert.throws(() => parseIdx(bytes(header(0x0d, [1]), [0, 0, 0, 0])), {
      message: /element type 0x0d \(float32\) is not supported; only 0x08 \(unsigned byte\) is/,
    });
  });

  it('reports truncated files: magic, header and data', () => {
    assert.throws(() => parseIdx(bytes([0, 0]), 'tiny'), {
      message: 'tiny: is truncated: 2 bytes, too short for the 4-byte IDX magic number.',
    });
    assert.throws(() => parseIdx(bytes(header(0x08, [2, 3]).slice(0, 9))), {
      message: /truncated: the header declares 2 dimensions \(12 header bytes\) but the file has only 9 bytes/,
    });
    assert.throws(() => parseIdx(bytes(header(0x08, [2, 3]), [1, 2, 3, 4, 5])), {
      message: /truncated: dimensions \[2, 3\] need 6 data bytes after the 12-byte header, but only 5 are present/,
    });
  });

  it('reports trailing bytes as a size mismatch', () => {
    assert.throws(() => parseIdx(bytes(header(0x08, [2]), [1, 2, 3])), {
      message: /size mismatch: dimensions \[2\] need 2 data bytes .* but 3 are present \(1 extra\)/,
    });
  });

  it('rejects zero dimensions', () => {
    assert.throws(() => parseIdx(bytes([0, 0, 8, 0])), /declares 0 dimensions/);
  });

  it('works on a view into a larger buffer (byteOffset respected)', () => {
    const inner = encodeIdx([2], Uint8Array.of(9, 8));
    const outer = new Uint8Array(inner.length + 5);
    outer.set(inner, 3);
    const idx = parseIdx(outer.subarray(3, 3 + inner.length));
    assert.deepEqual(idx.shape, [2]);
    assert.deepEqual(Array.from(idx.data), [9, 8]);
  });

  it('encodeIdx refuses data that does not fit the shape', () => {
    assert.throws(() => encodeIdx([2, 2], new Uint8Array(3)), /need 4 elements but 3 were given/);
  });
});

describe('imageDatasetFromIdx', () => {
  const images = parseIdx(encodeIdx([3, 2, 2], Uint8Array.from({ length: 12 }, (_, i) => i)));
  const labels = parseIdx(encodeIdx([3], Uint8Array.of(0, 9, 4)));

  it('pairs images with labels and applies limit', () => {
    const all = imageDatasetFromIdx(images, labels);
    assert.equal(all.count, 3);
    assert.equal(all.height, 2);
    assert.equal(all.width, 2);
    const two = imageDatasetFromIdx(images, labels, { limit: 2 });
    assert.equal(two.count, 2);
    assert.deepEqual(Array.from(two.images), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(Array.from(two.labels), [0, 9]);
    assert.equal(imageDatasetFromIdx(images, labels, { limit: 99 }).count, 3, 'limit is at most');
  });

  it('names mismatched counts, wrong ranks and out-of-range labels', () => {
    const fewer = parseIdx(encodeIdx([2], Uint8Array.of(0, 1)));
    assert.throws(() => imageDatasetFromIdx(images, fewer, { imagesSource: 'I', labelsSource: 'L' }), {
      name: 'IdxFormatError',
      message: 'I holds 3 images but L holds 2 labels.',
    });
    assert.throws(() => imageDatasetFromIdx(labels, labels, { imagesSource: 'I' }), {
      message: 'I: expected 3 dimensions [count, height, width], got [3].',
    });
    assert.throws(() => imageDatasetFromIdx(images, images, { labelsSource: 'L' }), {
      message: 'L: expected 1 dimension [count], got [3, 2, 2].',
    });
    const bad = parseIdx(encodeIdx([3], Uint8Array.of(0, 10, 1)));
    assert.throws(() => imageDatasetFromIdx(images, bad, { labelsSource: 'L' }), {
      message: 'L: label 10 at record 1 is not below 10 classes.',
    });
    assert.throws(() => imageDatasetFromIdx(images, labels, { limit: -1 }), /limit must be a non-negative integer, got -1/);
  });

  it('is an IdxFormatError', () => {
    assert.throws(() => parseIdx(new Uint8Array(0)), IdxFormatError);
  });
});
