/**
 * How many examples a command takes: --train-size and --test-size beyond the data are refused in
 * one line naming the value and the data's size (train, a set of runs, sweep, as demo), not
 * silently capped; bench and analyze, which choose their own numbers of examples, do not take
 * them; and analyze's note says how many examples it really analyses.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeIdx } from '../../src/data/idx.js';
import {
  FASHION_MNIST_FILES,
  fashionMnistSliceDir,
  readIdxFile,
} from '../../src/data/node/fashion-mnist.js';
import { cli, tempDir, TINY } from './helpers.js';

function assertOneLine(err: string, message: RegExp): void {
  assert.match(err.trim(), message);
  assert.equal(err.trim().split('\n').length, 1, err);
}

/** TINY's settings with other sizes. */
function sized(trainSize: string, testSize: string): string[] {
  const args = [...TINY];
  args[args.indexOf('--train-size') + 1] = trainSize;
  args[args.indexOf('--test-size') + 1] = testSize;
  return args;
}

const SLICE = 'data/fashion-mnist \\(shipped slice\\)';

describe('--train-size and --test-size beyond the data', () => {
  it('train refuses them in one line and writes nothing', async () => {
    const out = join(tempDir(), 'run');
    const train = await cli(['train', ...sized('4001', '16'), '--out', out]);
    assert.equal(train.code, 2);
    assertOneLine(
      train.err,
      new RegExp(
        `^error: --train-size 4001: ${SLICE} has 4000 training examples \\(--dataset fashion-mnist-slice\\); give at most 4000, or leave it out`,
      ),
    );
    assert.equal(existsSync(join(out, 'checkpoint.json')), false);
    const test = await cli(['train', ...sized('16', '1001')]);
    assert.equal(test.code, 2);
    assertOneLine(
      test.err,
      new RegExp(`^error: --test-size 1001: ${SLICE} has 1000 test examples`),
    );
    // At the size of the data: taken.
    const all = await cli(['train', ...sized('16', '1000'), '--epochs', '1', '--optimizer', 'sgd']);
    assert.equal(all.code, 0, all.err);
  });

  it('a set of runs and sweep refuse them too', async () => {
    const set = await cli(['train', ...sized('5000', '16'), '--optimizers', 'sgd', '--seeds', '1']);
    assert.equal(set.code, 2);
    assertOneLine(set.err, /^error: --train-size 5000: .* has 4000 training examples/);
    const sweep = await cli(['sweep', ...sized('16', '2000'), '--optimizers', 'sgd', '--scales',
      '1', '--no-block', '--out', tempDir()]); // prettier-ignore
    assert.equal(sweep.code, 2);
    assertOneLine(sweep.err, /^error: --test-size 2000: .* has 1000 test examples/);
  });

  it('on text, names the sequences the file gives', async () => {
    const file = join(tempDir(), 'tiny.txt');
    writeFileSync(file, 'abcdefgh'.repeat(40)); // 320 characters: 40 sequences of 8
    const run = await cli(['train', '--model', 'char-transformer', '--dataset', 'text', '--data',
      file, '--seq-length', '8', '--train-size', '100', '--backend', 'cpu']); // prettier-ignore
    assert.equal(run.code, 2);
    assertOneLine(
      run.err,
      /^error: --train-size 100: .*tiny\.txt has 36 training sequences \(--dataset text\)/,
    );
  });

  it('bench and analyze do not take them (they ignored them)', async () => {
    const bench = await cli(['bench', '--train-size', '100']);
    assert.equal(bench.code, 2);
    assertOneLine(bench.err, /^error: unknown option '--train-size'/);
    const analyze = await cli(['analyze', 'some-model', '--test-size', '100']);
    assert.equal(analyze.code, 2);
    assertOneLine(analyze.err, /^error: unknown option '--test-size'/);
  });
});

/** A Fashion-MNIST directory (uncompressed IDX files) of the slice's first images. */
function smallFashionMnist(train: number, test: number): string {
  const dir = tempDir('adahessian-idx-');
  const slice = fashionMnistSliceDir();
  for (const [split, count] of [
    ['train', train],
    ['test', test],
  ] as const) {
    const files = FASHION_MNIST_FILES[split];
    const images = readIdxFile(join(slice, `${files.images}.gz`));
    const labels = readIdxFile(join(slice, `${files.labels}.gz`));
    const pixels = images.data.slice(0, count * 784);
    writeFileSync(join(dir, files.images), encodeIdx([count, 28, 28], pixels));
    writeFileSync(join(dir, files.labels), encodeIdx([count], labels.data.slice(0, count)));
  }
  return dir;
}

describe("analyze's note", () => {
  it('says how many examples it analyses, all of a split smaller than asked', async () => {
    const run = tempDir();
    const trained = await cli(['train', ...TINY, '--optimizer', 'sgd', '--epochs', '1', '--out', run]); // prettier-ignore
    assert.equal(trained.code, 0, trained.err);
    const budget = ['--top-n', '1', '--eigen-iters', '2', '--trace-iters', '1', '--density-iters',
      '2', '--backend', 'cpu', '--no-native']; // prettier-ignore
    const asked = await cli(['analyze', run, ...budget, '--batch-size', '8', '--out', tempDir()]);
    assert.equal(asked.code, 0, asked.err);
    assert.match(asked.err, /^analyze: .* on 8 train examples of fashion-mnist-slice \(cpu\)$/m);
    const data = smallFashionMnist(16, 12);
    const more = await cli(['analyze', run, ...budget, '--dataset', 'fashion-mnist', '--data', data,
      '--split', 'test', '--batch-size', '10', '--batches', '2', '--out', tempDir()]); // prettier-ignore
    assert.equal(more.code, 0, more.err);
    assert.match(
      more.err,
      /^analyze: .* on all 12 \(of 20 asked\) test examples of fashion-mnist \(cpu\)$/m,
    );
  });
});
