import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  classCounts,
  encodeIdx,
  fashionMnistSliceDir,
  findFullFashionMnist,
  loadFashionMnist,
  loadFashionMnistSlice,
  parseIdx,
  readIdxFile,
} from '../../src/node.js';

describe('Fashion-MNIST slice (data/fashion-mnist)', () => {
  it('has 4000 training and 1000 test 28x28 records', () => {
    const train = loadFashionMnistSlice('train');
    const test = loadFashionMnistSlice('test');
    for (const [set, n] of [
      [train, 4000],
      [test, 1000],
    ] as const) {
      assert.equal(set.count, n);
      assert.equal(set.height, 28);
      assert.equal(set.width, 28);
      assert.equal(set.images.length, n * 28 * 28);
      assert.equal(set.labels.length, n);
    }
  });

  it('has the class balance the README states', () => {
    assert.deepEqual(
      classCounts(loadFashionMnistSlice('train').labels),
      [373, 440, 404, 409, 395, 391, 400, 413, 380, 395],
    );
    assert.deepEqual(
      classCounts(loadFashionMnistSlice('test').labels),
      [107, 105, 111, 93, 115, 87, 97, 95, 95, 95],
    );
  });

  it('looks like images: mostly background, some full ink', () => {
    const { images } = loadFashionMnistSlice('test', { limit: 100 });
    assert.equal(images.length, 100 * 784);
    const zeros = images.filter((b) => b === 0).length / images.length;
    assert.ok(zeros > 0.3 && zeros < 0.8, `fraction of background pixels ${zeros}`);
    assert.ok(images.includes(255));
  });

  it('is gzipped with a fixed header (mtime 0) and stays under 3 MB', () => {
    const dir = fashionMnistSliceDir();
    let total = 0;
    for (const name of [
      'train-images-idx3-ubyte.gz',
      'train-labels-idx1-ubyte.gz',
      't10k-images-idx3-ubyte.gz',
      't10k-labels-idx1-ubyte.gz',
    ]) {
      const gz = readFileSync(join(dir, name));
      total += gz.length;
      assert.deepEqual([gz[0], gz[1]], [0x1f, 0x8b], `${name} is gzip`);
      assert.equal(gz.readUInt32LE(4), 0, `${name} has mtime 0`);
    }
    assert.ok(total < 3e6, `slice is ${total} bytes`);
  });

  const fullDir = findFullFashionMnist();
  it(
    'equals the first records of the full dataset',
    {
      skip:
        fullDir === undefined
          ? 'full Fashion-MNIST not found (../shared/datasets/fashion-mnist, /usr/share/datasets/fashion-mnist or $ADAHESSIAN_FASHION_MNIST)'
          : false,
    },
    () => {
      const slice = fashionMnistSliceDir();
      for (const [stem, n] of [
        ['train-images-idx3-ubyte', 4000],
        ['train-labels-idx1-ubyte', 4000],
        ['t10k-images-idx3-ubyte', 1000],
        ['t10k-labels-idx1-ubyte', 1000],
      ] as const) {
        const full = readIdxFile(join(fullDir!, `${stem}.gz`));
        const part = parseIdx(gunzipSync(readFileSync(join(slice, `${stem}.gz`))));
        assert.deepEqual(part.shape, [n, ...full.shape.slice(1)], stem);
        const recordSize = part.data.length / n;
        assert.ok(
          Buffer.from(part.data).equals(full.data.subarray(0, n * recordSize)),
          `${stem}: slice differs from the first ${n} records of the full set`,
        );
      }
      // The loader reads the full set too, with limit, and agrees with the slice.
      const fullTest = loadFashionMnist(fullDir!, { split: 'test', limit: 1000 });
      const sliceTest = loadFashionMnistSlice('test');
      assert.deepEqual(fullTest.labels, sliceTest.labels);
      assert.deepEqual(fullTest.images, sliceTest.images);
      assert.equal(loadFashionMnist(fullDir!, { split: 'test' }).count, 10000);
    },
  );
});

describe('loadFashionMnist on crafted directories', () => {
  let root: string;
  const images = encodeIdx([3, 2, 2], Uint8Array.from({ length: 12 }, (_, i) => i * 20));
  const labels = encodeIdx([3], Uint8Array.of(2, 0, 7));

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'adahessian-fmnist-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  function dirWith(name: string, files: Record<string, Uint8Array>): string {
    const dir = join(root, name);
    mkdirSync(dir);
    for (const [file, content] of Object.entries(files)) writeFileSync(join(dir, file), content);
    return dir;
  }

  it('reads uncompressed files, and gzipped ones with or without .gz', () => {
    const plain = dirWith('plain', {
      't10k-images-idx3-ubyte': images,
      't10k-labels-idx1-ubyte': labels,
    });
    const zipped = dirWith('zipped', {
      't10k-images-idx3-ubyte.gz': gzipSync(images),
      // gzip detected by content, not by name
      't10k-labels-idx1-ubyte': gzipSync(labels),
    });
    for (const dir of [plain, zipped]) {
      const set = loadFashionMnist(dir, { split: 'test' });
      assert.equal(set.count, 3);
      assert.equal(set.height, 2);
      assert.deepEqual(Array.from(set.labels), [2, 0, 7]);
      assert.deepEqual(Array.from(set.images.subarray(4, 8)), [80, 100, 120, 140]);
    }
    assert.equal(loadFashionMnist(plain, { split: 'test', limit: 1 }).images.length, 4);
  });

  it('names a missing directory, a missing file and a wrong split', () => {
    const missing = join(root, 'nowhere');
    assert.throws(() => loadFashionMnist(missing, { split: 'train' }), {
      message: `Fashion-MNIST directory ${missing} does not exist.`,
    });
    const half = dirWith('half', { 't10k-images-idx3-ubyte': images });
    assert.throws(() => loadFashionMnist(half, { split: 'test' }), {
      message: `Fashion-MNIST file ${join(half, 't10k-labels-idx1-ubyte')}[.gz] not found in ${half}.`,
    });
    assert.throws(
      () => loadFashionMnist(half, { split: 'validation' as 'test' }),
      /Unknown Fashion-MNIST split 'validation'; expected 'train' or 'test'/,
    );
  });

  it('names the malformed file: truncated, corrupt gzip, wrong dims, bad magic', () => {
    const truncated = dirWith('truncated', {
      't10k-images-idx3-ubyte': images.subarray(0, images.length - 1),
      't10k-labels-idx1-ubyte': labels,
    });
    assert.throws(() => loadFashionMnist(truncated, { split: 'test' }), {
      name: 'IdxFormatError',
      message: `${join(truncated, 't10k-images-idx3-ubyte')}: is truncated: dimensions [3, 2, 2] need 12 data bytes after the 16-byte header, but only 11 are present.`,
    });

    const gz = gzipSync(labels);
    const corrupt = dirWith('corrupt', {
      't10k-images-idx3-ubyte': images,
      't10k-labels-idx1-ubyte.gz': gz.subarray(0, gz.length - 6),
    });
    assert.throws(() => loadFashionMnist(corrupt, { split: 'test' }), {
      name: 'IdxFormatError',
      message: new RegExp(
        `^${escape(join(corrupt, 't10k-labels-idx1-ubyte.gz'))}: gzip data is corrupt or truncated`,
      ),
    });

    const swapped = dirWith('swapped', {
      't10k-images-idx3-ubyte': labels,
      't10k-labels-idx1-ubyte': labels,
    });
    assert.throws(() => loadFashionMnist(swapped, { split: 'test' }), {
      message: `${join(swapped, 't10k-images-idx3-ubyte')}: expected 3 dimensions [count, height, width], got [3].`,
    });

    const mismatch = dirWith('mismatch', {
      't10k-images-idx3-ubyte': images,
      't10k-labels-idx1-ubyte': encodeIdx([2], Uint8Array.of(1, 2)),
    });
    assert.throws(() => loadFashionMnist(mismatch, { split: 'test' }), {
      message: `${join(mismatch, 't10k-images-idx3-ubyte')} holds 3 images but ${join(mismatch, 't10k-labels-idx1-ubyte')} holds 2 labels.`,
    });

    const notIdx = dirWith('not-idx', {
      't10k-images-idx3-ubyte': new TextEncoder().encode('<html>404 Not Found</html>'),
      't10k-labels-idx1-ubyte': labels,
    });
    assert.throws(() => loadFashionMnist(notIdx, { split: 'test' }), {
      message: new RegExp(
        `^${escape(join(notIdx, 't10k-images-idx3-ubyte'))}: bad IDX magic number 3c 68 74 6d`,
      ),
    });
  });

  it('names an unreadable file (a directory where a file should be)', () => {
    const dir = join(root, 'unreadable');
    mkdirSync(join(dir, 't10k-images-idx3-ubyte'), { recursive: true });
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), labels);
    assert.throws(() => loadFashionMnist(dir, { split: 'test' }), {
      message: new RegExp(`^Cannot read ${escape(join(dir, 't10k-images-idx3-ubyte'))}: EISDIR`),
    });
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
