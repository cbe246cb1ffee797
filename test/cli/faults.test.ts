/**
 * `adahessian train` (and demo, sweep) under faults: a real divergence, an --out that cannot
 * be written, damaged data files and checkpoints, a resume position the data no longer has.
 * Each is refused with one line naming the problem, before any work where it can be known up
 * front, and leaves the files that were there as they were.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { tensorChecksum } from '../../src/cli/checkpoint.js';
import { memoryIo } from '../../src/cli/output.js';
import { train } from '../../src/cli/training.js';
import { encodeIdx } from '../../src/data/idx.js';
import {
  FASHION_MNIST_FILES,
  fashionMnistSliceDir,
  readIdxFile,
} from '../../src/data/node/fashion-mnist.js';
import { useBackend } from '../../src/index.js';
import { cli, spawnCli, tempDir, TINY } from './helpers.js';

const quiet = () => memoryIo({ quiet: true });

/** One line on stderr, "error: ..." and no stack trace. */
function assertOneLine(err: string, pattern: RegExp): void {
  assert.match(err, pattern);
  assert.equal(err.trim().split('\n').length, 1, `more than one line:\n${err}`);
  assert.doesNotMatch(err, /\n\s+at /);
}

/** A Fashion-MNIST directory of uncompressed IDX files cut from the shipped slice. */
function idxDir(train: number, test: number, testSide = 28): string {
  const dir = tempDir('adahessian-idx-');
  const slice = fashionMnistSliceDir();
  const write = (split: 'train' | 'test', count: number, side: number) => {
    const files = FASHION_MNIST_FILES[split];
    const images = readIdxFile(join(slice, `${files.images}.gz`));
    const labels = readIdxFile(join(slice, `${files.labels}.gz`));
    const pixels = new Uint8Array(count * side * side);
    for (let i = 0; i < count; i++) {
      for (let r = 0; r < side; r++) {
        pixels.set(
          images.data.subarray(i * 784 + r * 28, i * 784 + r * 28 + side),
          (i * side + r) * side,
        );
      }
    }
    writeFileSync(join(dir, files.images), encodeIdx([count, side, side], pixels));
    writeFileSync(join(dir, files.labels), encodeIdx([count], labels.data.slice(0, count)));
  };
  write('train', train, 28);
  write('test', test, testSide);
  return dir;
}

type CheckpointJson = Record<string, unknown> & {
  config: Record<string, unknown>;
  model: { name: string; dtype: string; shape: number[]; data: string }[];
  optimizer: unknown[];
  optimizerExtra: unknown[];
  checksum: string;
};

const readCheckpoint = (dir: string) =>
  JSON.parse(readFileSync(join(dir, 'checkpoint.json'), 'utf8')) as CheckpointJson;

function writeCheckpoint(dir: string, file: CheckpointJson, resign = true): void {
  if (resign) {
    file.checksum = tensorChecksum([
      file.model as never,
      file.optimizer as never,
      file.optimizerExtra as never,
    ]);
  }
  writeFileSync(join(dir, 'checkpoint.json'), JSON.stringify(file));
}

describe('train under faults', () => {
  before(async () => {
    await useBackend('cpu');
  });

  it('a learning rate that diverges on the first step: exit 1, nothing saved as a success, no leak', async () => {
    // The second adahessian run checks for leaks (the first ones warm up kernels and caches).
    for (const [i, optimizer] of ['sgd', 'adahessian', 'adahessian'].entries()) {
      const tensors = tf.memory().numTensors;
      const out = tempDir();
      const run = await cli([
        'train',
        ...TINY,
        '--optimizer',
        optimizer,
        '--lr',
        '1e300',
        '--batch-size',
        '64',
        '--epochs',
        '1',
        '--out',
        out,
      ]);
      assert.equal(run.code, 1, `${optimizer}: ${run.err}`);
      assertOneLine(
        run.err,
        /^error: Training diverged at epoch 1, step 1: .*(updated weights|weights NaN or infinite).* Try a smaller --lr\./,
      );
      assert.doesNotMatch(run.err, /\.\./, 'a stray ".."');
      assert.ok(!existsSync(join(out, 'model')), `${optimizer}: a diverged model was saved`);
      assert.ok(!existsSync(join(out, 'checkpoint.json')), `${optimizer}: checkpoint written`);
      assert.ok(!existsSync(join(out, 'metrics.json')), `${optimizer}: metrics claim a result`);
      if (i === 2) assert.equal(tf.memory().numTensors, tensors, 'tensors leaked');
    }
  });

  it('a run that diverges on resume keeps its last finite checkpoint byte for byte', async () => {
    const out = tempDir();
    const first = await cli([
      'train',
      ...TINY,
      '--optimizer',
      'sgd',
      '--epochs',
      '1',
      '--checkpoint-every',
      '1',
      '--out',
      out,
    ]);
    assert.equal(first.code, 0, first.err);
    // The same run continued with a learning rate that makes the weights infinite at once.
    const file = readCheckpoint(out);
    file.config.lr = 1e300;
    writeCheckpoint(out, file, false);
    const before = readFileSync(join(out, 'checkpoint.json'));
    const resumed = await cli(['train', '--resume', out, '--epochs', '2', '--quiet']);
    assert.equal(resumed.code, 1, resumed.err);
    assertOneLine(resumed.err, /^error: Training diverged at epoch 2, step 1: /);
    assert.ok(readFileSync(join(out, 'checkpoint.json')).equals(before), 'checkpoint replaced');
  });

  it('an --out that cannot be written is refused before any work (train, demo, sweep)', async () => {
    const file = join(tempDir(), 'a-file');
    writeFileSync(file, 'x');
    for (const [command, extra] of [
      ['train', TINY],
      ['demo', ['--quiet', '--backend', 'cpu']],
      ['sweep', ['--quiet', '--backend', 'cpu', '--model', 'mlp']],
    ] as const) {
      for (const out of [file, join(file, 'sub')]) {
        const run = await cli([command, ...extra, '--out', out]);
        assert.equal(run.code, 2, `${command} --out ${out}: ${run.err}`);
        assertOneLine(run.err, /^error: --out .* cannot be written to: /);
      }
    }
    assert.equal(readFileSync(file, 'utf8'), 'x');
  });

  it('--out /proc/x fails at once with exit 2 instead of hanging', async () => {
    const run = await spawnCli(['train', ...TINY, '--out', '/proc/adahessian-x/y'], {
      direct: true,
      onStart: (child) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        child.once('exit', () => clearTimeout(timer));
      },
    });
    assert.equal(run.code, 2, `${run.signal ?? ''} ${run.err}`);
    assertOneLine(run.err, /^error: --out \/proc\/adahessian-x\/y cannot be written to: /);
  });

  it('damaged data files: one line naming the file (exit 2), the stack only with --debug', async () => {
    const truncated = idxDir(64, 32);
    const images = join(truncated, FASHION_MNIST_FILES.train.images);
    writeFileSync(images, readFileSync(images).subarray(0, 1000));
    const args = ['train', ...TINY, '--dataset', 'fashion-mnist', '--data', truncated];
    const run = await cli(args);
    assert.equal(run.code, 2);
    assertOneLine(run.err, /^error: --data: .*train-images-idx3-ubyte.*truncated/);
    const debug = await cli([...args, '--debug']);
    assert.equal(debug.code, 2);
    assert.match(debug.err, /\n\s+at /);

    const cifar = tempDir();
    writeFileSync(join(cifar, 'data_batch_1.bin'), new Uint8Array(3073 * 2 + 5));
    const cifarRun = await cli([
      'train',
      ...TINY,
      '--dataset',
      'cifar10',
      '--data',
      cifar,
      '--train-size',
      '2',
    ]);
    assert.equal(cifarRun.code, 2);
    assertOneLine(cifarRun.err, /^error: --data: .*data_batch_1\.bin/);
  });

  it('training and test images of different sizes are refused up front', async () => {
    const dir = idxDir(32, 16, 14);
    const run = await cli(['train', ...TINY, '--dataset', 'fashion-mnist', '--data', dir]);
    assert.equal(run.code, 2);
    assertOneLine(
      run.err,
      /^error: --data .*: the training images are 28x28x1 .*, the test images 14x14x1; they must match\./,
    );
  });

  it('a text with one distinct character is refused up front', async () => {
    const file = join(tempDir(), 'a.txt');
    writeFileSync(file, 'a'.repeat(400));
    const run = await cli([
      'train',
      '--dataset',
      'text',
      '--data',
      file,
      '--model',
      'char-transformer',
      '--seq-length',
      '8',
      '--backend',
      'cpu',
      '--quiet',
    ]);
    assert.equal(run.code, 2);
    assertOneLine(run.err, /^error: --data .*: the text has 1 distinct character\(s\)/);
  });

  it('demo --train-size beyond the shipped slice is refused, not silently capped', async () => {
    const run = await cli([
      'demo',
      '--train-size',
      '5000',
      '--quiet',
      '--backend',
      'cpu',
      '--out',
      tempDir(),
    ]);
    assert.equal(run.code, 2);
    assertOneLine(run.err, /^error: --train-size 5000 .*: the shipped slice has 4000 training/);
  });

  it('--resume past the steps the data now gives is refused (no endless loop)', async () => {
    const data = idxDir(64, 32);
    const out = tempDir();
    const controller = new AbortController();
    const settings = {
      model: 'mlp',
      dataset: 'fashion-mnist' as const,
      data,
      batchSize: 16,
      backend: 'cpu' as const,
      epochs: 2,
    };
    await train(
      {
        ...settings,
        out,
        signal: controller.signal,
        onStep: ({ step }) => {
          if (step === 3) controller.abort();
        },
      },
      quiet(),
    );
    // The data shrinks to 2 steps per epoch; the checkpoint is 3 steps into epoch 1.
    const shorter = idxDir(32, 32);
    for (const f of Object.values(FASHION_MNIST_FILES.train)) {
      writeFileSync(join(data, f), readFileSync(join(shorter, f)));
    }
    const before = readFileSync(join(out, 'checkpoint.json'));
    const run = await spawnCli(['train', '--resume', out, '--quiet'], {
      direct: true,
      onStart: (child) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        child.once('exit', () => clearTimeout(timer));
      },
    });
    assert.equal(run.code, 2, `${run.signal ?? ''} ${run.err}`);
    assertOneLine(
      run.err,
      /^error: --resume .*: the checkpoint is 3 steps into epoch 1, but the data now gives 2 steps per epoch/,
    );
    assert.ok(readFileSync(join(out, 'checkpoint.json')).equals(before));
  });

  it('a resumed run keeps --checkpoint-every', async () => {
    const out = tempDir();
    const settings = {
      model: 'mlp',
      trainSize: 64,
      testSize: 16,
      batchSize: 8,
      backend: 'cpu' as const,
    };
    const controller = new AbortController();
    await train(
      {
        ...settings,
        epochs: 1,
        out,
        checkpointEvery: 2,
        signal: controller.signal,
        onStep: ({ globalStep }) => {
          if (globalStep === 2) controller.abort();
        },
      },
      quiet(),
    );
    const seen: number[] = [];
    await train(
      {
        resume: out,
        onStep: ({ globalStep }) => {
          // Read before this step's own checkpoint: the last one every 2 steps.
          seen.push(readCheckpoint(out).globalStep as number);
          void globalStep;
        },
      },
      quiet(),
    );
    // Steps 3..8 of 8: checkpoints after steps 4 and 6 (step 8 ends the epoch).
    assert.deepEqual(seen, [2, 2, 4, 4, 6, 6]);
  });
});

describe('damaged or edited checkpoints are refused with one line', () => {
  let run: string;
  before(async () => {
    await useBackend('cpu');
    run = tempDir();
    await train(
      {
        model: 'mlp',
        trainSize: 32,
        testSize: 16,
        batchSize: 16,
        backend: 'cpu',
        epochs: 1,
        out: run,
      },
      quiet(),
    );
  });

  const cases: [string, (f: CheckpointJson) => boolean, RegExp][] = [
    ['a missing field', (f) => (delete f.accumulator, true), /'accumulator' is missing/],
    [
      'a missing setting',
      (f) => (delete f.config.batchSize, true),
      /'config\.batchSize' is missing/,
    ],
    ['epoch 99', (f) => ((f.epoch = 99), true), /'epoch' is 99; expected an integer from 0 to 1/],
    ['epoch -1', (f) => ((f.epoch = -1), true), /'epoch' is -1/],
    [
      'stepInEpoch 9999',
      (f) => ((f.stepInEpoch = 9999), true),
      /'stepInEpoch' is 9999 after the last epoch/,
    ],
    [
      'a wrong dtype',
      (f) => ((f.model[0]!.dtype = 'int32'), true),
      /weight .* is int32 \[784,256\], the model's float32/,
    ],
    [
      'a mislabelled optimizer',
      (f) => ((f.config.optimizer = 'adam'), true),
      /optimizer state is not that of 'adam'/,
    ],
    [
      'an empty optimizer state',
      (f) => ((f.optimizer = []), true),
      /optimizer state .*: 0 tensors, expected 11/,
    ],
    [
      'a damaged weight (checksum)',
      (f) => {
        const d = f.model[0]!.data;
        f.model[0]!.data = (d[0] === 'A' ? 'B' : 'A') + d.slice(1);
        return false;
      },
      /do not match their checksum: the file is damaged/,
    ],
  ];
  for (const [name, edit, message] of cases) {
    it(name, async () => {
      const dir = tempDir();
      const file = readCheckpoint(run);
      const resign = edit(file);
      writeCheckpoint(dir, file, resign);
      const before = readFileSync(join(dir, 'checkpoint.json'));
      const result = await cli(['train', '--resume', dir, '--quiet', '--epochs', '2']);
      assert.equal(result.code, 2, result.err);
      assertOneLine(result.err, message);
      assert.ok(readFileSync(join(dir, 'checkpoint.json')).equals(before));
    });
  }

  it('the unedited checkpoint resumes', async () => {
    const dir = tempDir();
    writeCheckpoint(dir, readCheckpoint(run), false);
    mkdirSync(join(dir, 'unused'));
    const result = await cli(['train', '--resume', dir, '--quiet', '--epochs', '2']);
    assert.equal(result.code, 0, result.err);
  });
});
