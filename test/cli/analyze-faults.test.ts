/**
 * `analyze` under bad input: an unwritable --out is refused before any work, and a damaged or
 * foreign saved model (truncated weights, a malformed manifest, an unknown layer, a model.json
 * that is not JSON) is one line naming the file (exit 2), not a stack trace; the files are
 * left as they were.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { useBackend } from '../../src/index.js';
import { cli, tempDir, TINY, weightsFileOf } from './helpers.js';

function assertOneLine(err: string, pattern: RegExp): void {
  assert.match(err, pattern);
  assert.equal(err.trim().split('\n').length, 1, `more than one line:\n${err}`);
  assert.doesNotMatch(err, /\n\s+at /);
}

describe('analyze under bad input', () => {
  let run: string;
  before(async () => {
    await useBackend('cpu');
    run = tempDir();
    const trained = await cli(['train', ...TINY, '--epochs', '1', '--out', run]);
    assert.equal(trained.code, 0, trained.err);
  });
  const analyze = (model: string, out = join(tempDir(), 'analysis')) =>
    cli(['analyze', model, '--backend', 'cpu', '--quiet', '--batch-size', '16', '--top-n', '1',
      '--out', out]); // prettier-ignore
  /** A copy of the trained run with model/`file` changed by `edit`. */
  const damaged = (file: string, edit: (bytes: Buffer) => string | Buffer) => {
    const dir = tempDir();
    cpSync(run, dir, { recursive: true });
    const path = join(dir, 'model', file);
    writeFileSync(path, edit(readFileSync(path)));
    return { dir, path };
  };

  it('an --out that cannot be written is refused before any work', async () => {
    const file = join(tempDir(), 'a-file');
    writeFileSync(file, 'x');
    for (const out of [file, join(file, 'sub')]) {
      const r = await analyze(run, out);
      assert.equal(r.code, 2, r.err);
      assertOneLine(r.err, /^error: --out .* cannot be written to: /);
    }
    assert.equal(readFileSync(file, 'utf8'), 'x');
  });

  it('data the model does not take (text for an image model): one line with both shapes', async () => {
    const text = join(tempDir(), 'text.txt');
    writeFileSync(text, 'the cat sat on the mat. '.repeat(40));
    const r = await cli(['analyze', run, '--dataset', 'text', '--data', text, '--backend', 'cpu',
      '--quiet', '--out', join(tempDir(), 'analysis')]); // prettier-ignore
    assert.equal(r.code, 2, r.err);
    assertOneLine(
      r.err,
      /^error: --dataset text does not fit .*model\.json: the model takes examples of shape \[28, 28, 1\], the data gives \[64\]\.\n$/,
    );
  });

  it('truncated weights: one line naming the weights file and the sizes', async () => {
    const { dir, path } = damaged(weightsFileOf(join(run, 'model')), (b) => b.subarray(0, 100));
    const r = await analyze(dir);
    assert.equal(r.code, 2, r.err);
    assertOneLine(
      r.err,
      /weights-[0-9a-f]{16}\.bin: 100 bytes, but .*model\.json describes \d+ \(truncated/,
    );
    assert.equal(readFileSync(path).length, 100, 'the file is left as it was');
  });

  it('other weights of the same size under the name: one line, not a silent mix', async () => {
    const { dir } = damaged(weightsFileOf(join(run, 'model')), (b) =>
      Buffer.from(b.map((x) => x ^ 1)),
    );
    const r = await analyze(dir);
    assert.equal(r.code, 2, r.err);
    assertOneLine(r.err, /weights-[0-9a-f]{16}\.bin: the content is not the one the name records/);
  });

  it('a model.json that is not JSON, a malformed manifest, an unknown layer: one line', async () => {
    const cases: [(b: Buffer) => string, RegExp][] = [
      [() => 'not json\nat all\n', /model\.json is not a readable model\.json: /],
      [
        (b) => JSON.stringify({ ...JSON.parse(b.toString()), weightsManifest: [{}] }),
        /model\.json: a weightsManifest entry lacks its weights or paths/,
      ],
      [
        (b) => b.toString().replace(/"class_name":\s*"Dense"/, '"class_name":"NoSuchLayer"'),
        /model\.json cannot be loaded: .*NoSuchLayer/,
      ],
    ];
    for (const [edit, message] of cases) {
      const { dir } = damaged('model.json', edit);
      const r = await analyze(dir);
      assert.equal(r.code, 2, r.err);
      assertOneLine(r.err, message);
    }
  });
});
