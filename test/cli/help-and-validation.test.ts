/**
 * --help for every command, and bad input refused with a message that names the problem and a
 * non-zero exit code, before any training starts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { cli, TINY, tempDir } from './helpers.js';

const COMMANDS = ['demo', 'train', 'analyze', 'bench', 'sweep'];

describe('adahessian --help', () => {
  it('lists every command', async () => {
    const { code, out } = await cli(['--help']);
    assert.equal(code, 0);
    for (const c of COMMANDS) assert.match(out, new RegExp(`^  ${c}\\b`, 'm'));
  });

  for (const c of COMMANDS) {
    it(`${c} --help shows its usage and options`, async () => {
      const { code, out } = await cli([c, '--help']);
      assert.equal(code, 0);
      assert.match(out, new RegExp(`^Usage: adahessian ${c}`, 'm'));
      assert.match(out, /--json/);
      assert.match(out, /--backend <name>/);
      assert.match(out, /--step-graphs <which>/);
    });
  }
});

describe('argument validation', () => {
  const cases: { name: string; args: string[]; message: RegExp }[] = [
    {
      name: 'unknown optimizer',
      args: ['train', '--optimizer', 'lbfgs'],
      message:
        /--optimizer <name>' argument 'lbfgs' is invalid\. Allowed choices are adahessian, sgd/,
    },
    {
      name: 'negative learning rate',
      args: ['train', '--lr', '-0.1'],
      message: /--lr <number>' argument '-0\.1' is invalid\. expected a finite number > 0/,
    },
    {
      name: 'learning rate that is not a number',
      args: ['train', '--lr', 'fast'],
      message: /expected a finite number > 0, got 'fast'/,
    },
    {
      name: 'zero epochs',
      args: ['train', '--epochs', '0'],
      message: /--epochs <n>' argument '0' is invalid\. expected a positive integer/,
    },
    {
      name: 'Hessian power above 1',
      args: ['train', '--hessian-power', '2'],
      message: /expected a number in \(0, 1\]/,
    },
    {
      name: 'unknown backend',
      args: ['train', '--backend', 'webgl'],
      message:
        /--backend <name>' argument 'webgl' is invalid\. Allowed choices are cpu, wasm, tensorflow/,
    },
    {
      name: 'unknown step-graph mode',
      args: ['sweep', '--step-graphs', 'adam'],
      message:
        /--step-graphs <which>' argument 'adam' is invalid\. Allowed choices are all, adahessian, off/,
    },
    {
      name: 'step graphs without the native kernels',
      args: ['demo', '--no-native', '--step-graphs', 'all'],
      message: /--step-graphs all: step graphs need the cpu backend with the native kernels/,
    },
    {
      name: 'unknown model',
      args: ['train', '--model', 'vgg'],
      message: /Allowed choices are mlp, small-cnn/,
    },
    {
      name: 'unknown option',
      args: ['train', '--learning-rate', '0.1'],
      message: /unknown option '--learning-rate'/,
    },
    {
      name: 'bad list entry',
      args: ['bench', '--hessian-every', '1,x'],
      message: /entry 'x': expected a positive integer/,
    },
    {
      name: '--seq-length on images (it would be ignored)',
      args: ['train', '--seq-length', '32'],
      message: /^error: --seq-length applies only to --dataset text\.$/m,
    },
    {
      name: 'bench optimizer not offered',
      args: ['bench', '--optimizers', 'sgd,lion'],
      message: /'lion' is not one of sgd, adam, adamw, adahessian/,
    },
  ];
  for (const c of cases) {
    it(`refuses ${c.name} (exit code 2)`, async () => {
      const { code, err } = await cli(c.args);
      assert.equal(code, 2);
      assert.match(err, c.message);
    });
  }

  it('refuses a missing data directory, naming it', async () => {
    const missing = join(tempDir(), 'no-such-dir');
    const { code, err } = await cli(['train', ...TINY, '--dataset', 'cifar10', '--data', missing]);
    assert.equal(code, 2);
    assert.match(err, new RegExp(`--data ${missing.replace(/[/\\]/g, '.')} does not exist`));
  });

  it('asks for --data where a dataset needs it', async () => {
    const { code, err } = await cli(['train', ...TINY, '--dataset', 'text']);
    assert.equal(code, 2);
    assert.match(err, /--dataset text needs --data \(a UTF-8 text file, or a directory of them\)/);
  });

  it('refuses the tensorflow backend when @tensorflow/tfjs-node is not installed', async () => {
    const { code, err } = await cli(['train', ...TINY, '--backend', 'tensorflow']);
    assert.equal(code, 2);
    assert.match(err, /--backend tensorflow: .*@tensorflow\/tfjs-node/);
  });

  it('refuses AdaHessian settings with another optimizer', async () => {
    const { code, err } = await cli([
      'train',
      ...TINY,
      '--optimizer',
      'adam',
      '--hessian-every',
      '2',
    ]);
    assert.equal(code, 2);
    assert.match(err, /--hessian-every applies only to --optimizer adahessian/);
  });

  it('refuses --resume from a directory without a checkpoint', async () => {
    const dir = tempDir();
    const { code, err } = await cli(['train', '--resume', dir, '--quiet']);
    assert.equal(code, 2);
    assert.match(err, /no checkpoint\.json there/);
  });

  it('refuses to analyze a model that does not exist', async () => {
    const { code, err } = await cli(['analyze', join(tempDir(), 'nothing'), '--quiet']);
    assert.equal(code, 2);
    assert.match(err, /Model .*nothing does not exist/);
  });
});
