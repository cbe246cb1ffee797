/**
 * Regenerates data/fashion-mnist/ (the slice shipped with the package) from the full
 * Fashion-MNIST set: the first 4000 training and first 1000 test records, in the same
 * IDX format, gzipped reproducibly (level 9, mtime 0, OS byte 3) so the output is the same
 * byte for byte on every run with the same zlib (Node 20's).
 *
 *   npx tsx scripts/make-fashion-slice.ts [full-dataset-dir] [--check]
 *
 * The full set is looked for in $ADAHESSIAN_FASHION_MNIST, ../shared/datasets/fashion-mnist
 * and /usr/share/datasets/fashion-mnist unless a directory is given. --check writes nothing
 * and exits 1 if the committed files differ from what would be written.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { encodeIdx } from '../src/data/idx.js';
import { classCounts } from '../src/data/image-dataset.js';
import {
  FASHION_MNIST_FILES,
  findFullFashionMnist,
  readIdxFile,
  type FashionMnistSplit,
} from '../src/data/node/fashion-mnist.js';

export const SLICE_COUNTS: Record<FashionMnistSplit, number> = { train: 4000, test: 1000 };

const outDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'data', 'fashion-mnist');

/** gzip with a fixed header: mtime 0 and OS 3 (Unix), whatever platform runs this. */
function reproducibleGzip(bytes: Uint8Array): Uint8Array {
  const gz = gzipSync(bytes, { level: 9 });
  gz.writeUInt32LE(0, 4); // MTIME
  gz[9] = 3; // OS
  return gz;
}

/** The first `count` records of an IDX file, as a new IDX file. */
function firstRecords(path: string, count: number): { idx: Uint8Array; data: Uint8Array } {
  const full = readIdxFile(path);
  const [total, ...rest] = full.shape as [number, ...number[]];
  if (total < count) throw new Error(`${path} holds ${total} records, fewer than ${count}.`);
  const recordSize = rest.reduce((a, b) => a * b, 1);
  const data = full.data.subarray(0, count * recordSize);
  return { idx: encodeIdx([count, ...rest], data), data };
}

function main(): void {
  const args = process.argv.slice(2);
  const check = args.includes('--check');
  const fullDir = args.find((a) => !a.startsWith('--')) ?? findFullFashionMnist();
  if (fullDir === undefined || !existsSync(fullDir)) {
    throw new Error(
      'Full Fashion-MNIST not found; pass its directory, set ADAHESSIAN_FASHION_MNIST, or ' +
        'apt-get install dataset-fashion-mnist.',
    );
  }
  const outputs: { name: string; bytes: Uint8Array }[] = [];
  for (const split of ['train', 'test'] as const) {
    for (const kind of ['images', 'labels'] as const) {
      const name = FASHION_MNIST_FILES[split][kind];
      const source = [join(fullDir, name), join(fullDir, `${name}.gz`)].find((p) => existsSync(p));
      if (source === undefined) throw new Error(`${join(fullDir, name)}[.gz] not found.`);
      const { idx, data } = firstRecords(source, SLICE_COUNTS[split]);
      outputs.push({ name: `${name}.gz`, bytes: reproducibleGzip(idx) });
      if (kind === 'labels') {
        console.log(
          `${split}: ${SLICE_COUNTS[split]} records, per class ${classCounts(data).join(' ')}`,
        );
      }
    }
  }
  outputs.push({ name: 'LICENSE', bytes: readFileSync(join(fullDir, 'LICENSE')) });

  let differences = 0;
  if (!check) mkdirSync(outDir, { recursive: true });
  for (const { name, bytes } of outputs) {
    const path = join(outDir, name);
    if (check) {
      const same = existsSync(path) && Buffer.compare(readFileSync(path), bytes) === 0;
      console.log(`${same ? 'same     ' : 'DIFFERENT'} ${path} (${bytes.length} bytes)`);
      if (!same) differences++;
    } else {
      writeFileSync(path, bytes);
      console.log(`wrote ${path} (${bytes.length} bytes)`);
    }
  }
  if (differences > 0) process.exitCode = 1;
}

main();
