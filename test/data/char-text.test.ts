import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { CharVocabulary, charDataset, charTensors, loadCharText } from '../../src/node.js';
import { readTextSource } from '../../src/data/node/char-text.js';
import { onBackend } from '../helpers.js';

/** Row i of a [count, seqLength] id array, decoded. */
function row(ids: Int32Array, i: number, len: number, vocab: CharVocabulary): string {
  return vocab.decode(ids.subarray(i * len, (i + 1) * len));
}

describe('character-level text dataset', () => {
  let root: string;
  before(async () => {
    await onBackend('cpu');
    root = mkdtempSync(join(tmpdir(), 'adahessian-text-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('builds a sorted vocabulary and round-trips encode/decode, astral characters included', () => {
    const text = 'hello, world 🙂!';
    const vocab = CharVocabulary.fromText(text);
    assert.deepEqual(vocab.chars, [' ', '!', ',', 'd', 'e', 'h', 'l', 'o', 'r', 'w', '🙂']);
    assert.equal(vocab.size, 11);
    const ids = vocab.encode(text);
    assert.equal(ids.length, 15, 'the emoji is one character');
    assert.deepEqual(Array.from(vocab.encode('hole')), [5, 7, 6, 4]);
    assert.equal(vocab.decode(ids), text);
  });

  it('names characters and ids that are not in the vocabulary', () => {
    const vocab = CharVocabulary.fromText('abc');
    assert.throws(() => vocab.encode('abz'), {
      message: 'CharVocabulary.encode: character "z" (U+007A) at position 2 is not in the vocabulary.',
    });
    assert.throws(() => vocab.decode([0, 3]), /id 3 at position 1 is outside 0..2/);
  });

  it('cuts sequences with next-character targets (no overlap by default)', () => {
    const ds = charDataset('abcdefghij', 3);
    // starts 0, 3, 6 (6 + 3 + 1 = 10 characters fit); 9 would need a target past the end
    assert.equal(ds.count, 3);
    assert.deepEqual(
      [0, 1, 2].map((i) => row(ds.inputs, i, 3, ds.vocab)),
      ['abc', 'def', 'ghi'],
    );
    assert.deepEqual(
      [0, 1, 2].map((i) => row(ds.targets, i, 3, ds.vocab)),
      ['bcd', 'efg', 'hij'],
    );
    const sliding = charDataset('abcdef', 4, { stride: 1 });
    assert.equal(sliding.count, 2);
    assert.equal(row(sliding.inputs, 1, 4, sliding.vocab), 'bcde');
    assert.equal(row(sliding.targets, 1, 4, sliding.vocab), 'cdef');
  });

  it('encodes a held-out text with the training vocabulary', () => {
    const train = charDataset('the cat sat', 2);
    const held = charDataset('a tea', 2, { vocab: train.vocab });
    assert.equal(held.vocab, train.vocab);
    assert.throws(() => charDataset('dog', 1, { vocab: train.vocab }), /character "d"/);
  });

  it('rejects too-short text and bad lengths, naming them', () => {
    assert.throws(() => charDataset('abc', 3), {
      message:
        'charDataset: the text has 3 characters; sequences of 3 with a next-character target need at least 4.',
    });
    assert.throws(() => charDataset('abcdef', 0), /seqLength must be a positive integer, got 0/);
    assert.throws(() => charDataset('abcdef', 2, { stride: 1.5 }), /stride must be a positive integer, got 1.5/);
    assert.throws(() => charDataset('', 1), /no characters given/);
  });

  it('gives int32 id tensors, or one-hot float targets, without leaks', () => {
    const ds = charDataset('abcabcabca', 3);
    const before = tf.memory().numTensors;
    const ids = charTensors(ds);
    assert.deepEqual(ids.x.shape, [3, 3]);
    assert.equal(ids.x.dtype, 'int32');
    assert.deepEqual(Array.from(ids.y.dataSync()), Array.from(ds.targets));
    const hot = charTensors(ds, { oneHot: true });
    assert.deepEqual(hot.y.shape, [3, 3, 3]);
    assert.equal(hot.y.dtype, 'float32');
    assert.deepEqual(Array.from(hot.y.dataSync()).slice(0, 3), [0, 1, 0], "target 'b'");
    tf.dispose([ids.x, ids.y, hot.x, hot.y]);
    assert.equal(tf.memory().numTensors, before);
  });

  it('loads a UTF-8 file and names missing, invalid and too-short files', () => {
    const good = join(root, 'good.txt');
    writeFileSync(good, 'Größe ändern\n'.repeat(3));
    const ds = loadCharText(good, 8);
    assert.equal(ds.count, 4);
    assert.equal(row(ds.inputs, 0, 8, ds.vocab), 'Größe än');
    const missing = join(root, 'missing.txt');
    assert.throws(() => loadCharText(missing, 4), {
      message: new RegExp(`^Cannot read text file ${missing.replace(/[.\\]/g, '\\$&')}: ENOENT`),
    });
    const latin1 = join(root, 'latin1.txt');
    writeFileSync(latin1, Uint8Array.of(0x47, 0x72, 0xf6, 0xdf, 0x65));
    assert.throws(() => loadCharText(latin1, 2), { message: `${latin1} is not valid UTF-8 text.` });
    const short = join(root, 'short.txt');
    writeFileSync(short, 'ab');
    assert.throws(() => loadCharText(short, 2), {
      message: `${short}: charDataset: the text has 2 characters; sequences of 2 with a next-character target need at least 3.`,
    });
  });

  it('reads a directory: its text files in name order, no links, subdirectories or binaries', () => {
    const dir = join(root, 'fortunes');
    mkdirSync(join(dir, 'sub'), { recursive: true });
    writeFileSync(join(dir, 'b'), 'second\n%\n');
    writeFileSync(join(dir, 'a'), 'first\n%\n');
    writeFileSync(join(dir, 'a.dat'), Uint8Array.of(0, 0, 0, 2, 0xff, 0xfe)); // binary index
    writeFileSync(join(dir, 'c.dat'), Uint8Array.of(0, 0, 0, 2)); // valid UTF-8, but NULs
    writeFileSync(join(dir, 'sub', 'z'), 'not read\n');
    symlinkSync('a', join(dir, 'a.u8'));
    const source = readTextSource(dir);
    assert.equal(source.text, 'first\n%\nsecond\n%\n');
    assert.deepEqual(source.files, [join(dir, 'a'), join(dir, 'b')]);
    assert.deepEqual(source.skipped, [join(dir, 'a.dat'), join(dir, 'c.dat')]);
    const ds = loadCharText(dir, 4);
    assert.equal(ds.count, 4);
    assert.equal(row(ds.inputs, 2, 4, ds.vocab), 'seco');
    const empty = join(root, 'binaries');
    mkdirSync(empty);
    writeFileSync(join(empty, 'x.dat'), Uint8Array.of(0xff));
    assert.throws(() => loadCharText(empty, 4), {
      message: `${empty} holds no UTF-8 text files (1 binary file(s) skipped; links and subdirectories are not followed).`,
    });
  });
});
