/**
 * `train --json` of one run gives what the rows of `--seeds/--optimizers` give: on text, the
 * test loss in bits per character (null on images).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TrainManyResult } from '../../src/cli/train-many.js';
import { cli, tempDir, TINY } from './helpers.js';

describe('train --json', () => {
  it('one run on text: each epoch has testBitsPerChar, equal to the one-seed row', async () => {
    const file = join(tempDir(), 'text.txt');
    writeFileSync(file, 'the cat sat on the mat. a dog ate the log. '.repeat(20));
    const args = ['train', '--model', 'char-transformer', '--dataset', 'text', '--data', file,
      '--seq-length', '8', '--train-size', '16', '--test-size', '8', '--batch-size', '8',
      '--epochs', '1', '--backend', 'cpu', '--quiet', '--json', '--seed', '1']; // prettier-ignore
    const one = await cli([...args, '--optimizer', 'adam']);
    assert.equal(one.code, 0, one.err);
    const metrics = JSON.parse(one.out).metrics as { testLoss: number; testBitsPerChar: number }[];
    for (const m of metrics) assert.equal(m.testBitsPerChar, m.testLoss / Math.LN2);
    const many = await cli([...args, '--optimizers', 'adam']);
    assert.equal(many.code, 0, many.err);
    const row = (JSON.parse(many.out) as TrainManyResult).rows[0]!;
    assert.equal(metrics.at(-1)!.testBitsPerChar, row.testBitsPerCharMean);
  });

  it('one run on images: testBitsPerChar is null, as in the rows', async () => {
    const one = await cli(['train', ...TINY, '--epochs', '1', '--json']);
    assert.equal(one.code, 0, one.err);
    const metrics = JSON.parse(one.out).metrics as { testBitsPerChar: unknown }[];
    assert.ok(metrics.length > 0);
    for (const m of metrics) assert.equal(m.testBitsPerChar, null);
  });
});
