/**
 * A saved model is a pair (model.json and the weights file it names), replaced as one: a run
 * killed after writing its new weights and before renaming its new model.json in leaves the
 * old pair loadable and intact (before, a new weights.bin beside the old model.json loaded as a
 * silent mix), and the next save removes the weights file the crash left unnamed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { loadModel } from '../../src/cli/model-io.js';
import { cli, ROOT, savedWeights, spawnCli, tempDir, TINY } from './helpers.js';

const killAtRename = pathToFileURL(join(ROOT, 'test', 'cli', 'fixtures', 'kill-at-rename.mjs'));

/** The loaded model's weights as bytes, and its metadata: what a reader of `out` gets. */
async function loaded(out: string): Promise<{ bytes: Buffer; metadata: unknown }> {
  const { model, metadata } = await loadModel(out);
  const bytes = Buffer.concat(model.getWeights().map((w) => Buffer.from(w.dataSync().buffer)));
  model.dispose();
  return { bytes, metadata };
}

const weightsFiles = (out: string) =>
  readdirSync(join(out, 'model')).filter((n) => n.endsWith('.bin'));

describe('a run killed between writing the weights and model.json', () => {
  it('leaves the old pair loadable; the next save leaves only the new pair', async () => {
    const out = tempDir();
    const first = await cli(['train', ...TINY, '--epochs', '1', '--out', out]);
    assert.equal(first.code, 0, first.err);
    const old = await loaded(out);
    const oldJson = readFileSync(join(out, 'model', 'model.json'), 'utf8');
    assert.ok(old.bytes.equals(savedWeights(out)));

    // Resuming to a second epoch saves the model again; it dies as model.json is renamed in.
    const killed = await spawnCli(['train', '--resume', out, '--epochs', '2', '--quiet'], {
      direct: true,
      env: {
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${killAtRename.href}`,
        ADAHESSIAN_TEST_KILL_AT_RENAME: 'model.json',
      },
    });
    assert.equal(killed.signal, 'SIGKILL', `not killed at model.json: ${killed.err}`);
    assert.equal(readFileSync(join(out, 'model', 'model.json'), 'utf8'), oldJson);
    const after = await loaded(out);
    assert.deepEqual(after.metadata, old.metadata);
    assert.ok(after.bytes.equals(old.bytes), "model.json loads other weights than its own run's");
    assert.equal(weightsFiles(out).length, 2, 'the new weights were not written before the kill');

    // The checkpoint already holds epoch 2, so resuming again only saves the model.
    const resumed = await cli(['train', '--resume', out, '--epochs', '2', '--quiet']);
    assert.equal(resumed.code, 0, resumed.err);
    const now = await loaded(out);
    assert.ok(!now.bytes.equals(old.bytes), 'the second epoch changed no weight');
    assert.ok(now.bytes.equals(savedWeights(out)));
    assert.deepEqual(weightsFiles(out), [
      JSON.parse(readFileSync(join(out, 'model', 'model.json'), 'utf8')).weightsManifest[0]
        .paths[0],
    ]);
    assert.equal(tf.memory().numTensors, 0);
  });
});
