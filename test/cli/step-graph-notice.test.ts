/**
 * When a step graph gives up (here: its check against op by op refuses a wrong translation, so
 * every step runs op by op), `train` says so in one line on stderr, naming the step and the
 * reason, once however many steps follow (src/cli/step-graph-notice.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { onnxRuntimeUnavailableReason } from '../../src/native/onnx-runtime.js';
import { TRANSLATIONS, type TranslationContext } from '../../src/native/step-graph/translate.js';
import { cli } from './helpers.js';

const unavailable = onnxRuntimeUnavailableReason();

type Rule = (ctx: TranslationContext) => void;

/** `train` of a small MLP (8 steps), with Relu translated by `rule` (null: as it is). */
async function train(optimizer: string, rule: Rule | null) {
  const table = TRANSLATIONS as Record<string, Rule>;
  const original = table['Relu']!;
  if (rule != null) table['Relu'] = rule;
  try {
    return await cli(['train', '--model', 'mlp', '--train-size', '128', '--test-size', '32',
      '--batch-size', '16', '--backend', 'cpu', '--native', '--step-graphs', 'all',
      '--optimizer', optimizer, '--epochs', '1', '--seed', '3', '--json']); // prettier-ignore
  } finally {
    table['Relu'] = original;
  }
}

/** Relu as the identity: the check refuses it. */
const identity: Rule = (ctx) => ctx.node('Identity', [ctx.input('x')], [ctx.output()]);

const notices = (err: string) => err.split('\n').filter((l) => l.includes('Step graphs:'));

describe('train: a step graph that gives up is said once', { skip: unavailable || false }, () => {
  it('AdaHessian: one line naming the step and the check that refused it', async () => {
    const r = await train('adahessian', identity);
    assert.equal(r.code, 0, r.err);
    const lines = notices(r.err);
    assert.equal(lines.length, 1, r.err);
    assert.match(
      lines[0]!,
      /^Step graphs: AdaHessian's step with the Hessian diagonal runs op by op from now on \(not compiled: the graph's output \d+ differs by .* \(against op by op\)\)\.$/,
    );
  });

  it('Adam: the gradient step, one line', async () => {
    const r = await train('adam', identity);
    assert.equal(r.code, 0, r.err);
    const lines = notices(r.err);
    assert.equal(lines.length, 1, r.err);
    assert.match(
      lines[0]!,
      /^Step graphs: the gradient step runs op by op from now on \(.*differs by/,
    );
  });

  it('nothing when the graphs are used', async () => {
    const r = await train('adahessian', null);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(notices(r.err), []);
  });
});
