/**
 * Ctrl-C (SIGINT) on the commands that do not checkpoint (sweep here; analyze, bench and demo
 * alike): they stop at once with exit code 130 instead of promising a checkpoint and running
 * on; a sweep's finished runs are whole, and `sweep --resume` reuses them.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnCli, tempDir } from './helpers.js';

describe('Ctrl-C on a command without checkpoints', () => {
  it('sweep stops at once (130); its finished runs are whole and --resume reuses them', async () => {
    const out = tempDir();
    const runs = join(out, 'runs');
    const args = ['sweep', '--model', 'mlp', '--train-size', '128', '--test-size', '16',
      '--epochs', '1', '--optimizers', 'sgd', '--scales', '1,2,4,6,10', '--no-block',
      '--backend', 'cpu', '--out', out]; // prettier-ignore
    let sentAt = 0;
    const stopped = await spawnCli(args, {
      direct: true,
      onStart: (child) => {
        // Ctrl-C once the first run is saved and the second is under way.
        const poll = setInterval(() => {
          if (!existsSync(runs) || readdirSync(runs).length === 0) return;
          clearInterval(poll);
          sentAt = Date.now();
          child.kill('SIGINT');
        }, 20);
        child.once('exit', () => clearInterval(poll));
      },
    });
    assert.ok(sentAt > 0, 'the sweep finished before its first run was saved');
    assert.equal(stopped.code, 130, stopped.err);
    assert.match(stopped.err, /Stopped \(Ctrl-C\)\./);
    assert.doesNotMatch(stopped.err, /saving a checkpoint/);
    const saved = readdirSync(runs);
    assert.ok(saved.length >= 1 && saved.length < 5, saved.join(' '));
    assert.ok(!existsSync(join(out, 'sweep.json')), 'an unfinished sweep wrote its result');
    for (const f of saved) {
      assert.ok(f.endsWith('.json'), `a partial file was left: ${f}`);
      JSON.parse(readFileSync(join(runs, f), 'utf8'));
    }
    const resumed = await spawnCli([...args, '--resume'], { direct: true });
    assert.equal(resumed.code, 0, resumed.err);
    assert.match(resumed.err, new RegExp(`sweep: ${saved.length} of 5 runs reused`));
  });
});
