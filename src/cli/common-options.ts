/** Options shared by several commands, declared once so their names and help agree. */
import { Option, type Command } from 'commander';
import { MODEL_NAMES } from '../models/index.js';
import { CLI_BACKENDS, defaultThreadsText, STEP_GRAPH_CHOICES } from './backend.js';
import { DATASET_NAMES } from './datasets.js';
import { nonEmptyPath, positiveInteger, seed, threadCount } from './options.js';

export interface OutputFlags {
  json?: boolean;
  quiet?: boolean;
}

export function addOutputOptions(cmd: Command): Command {
  return cmd
    .option('--json', 'print the result as one JSON document on stdout (progress stays on stderr)')
    .option('-q, --quiet', 'no progress or notes on stderr');
}

export function addBackendOption(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--backend <name>',
        'TensorFlow.js backend (default: cpu with --native when onnxruntime-node loads, else wasm; tensorflow needs @tensorflow/tfjs-node)',
      ).choices(CLI_BACKENDS),
    )
    .option('--native', 'run heavy kernels through ONNX Runtime (needs onnxruntime-node)')
    .option('--no-native', 'without --backend: run on wasm, without ONNX Runtime')
    .addOption(
      new Option(
        '--step-graphs <which>',
        "training steps replayed as one ONNX graph each, on cpu with the native kernels; adahessian: AdaHessian's only, the other optimizers get TF.js's gradients bit for bit (default: all)",
      ).choices(STEP_GRAPH_CHOICES),
    )
    .option(
      '--threads <n>',
      `ONNX Runtime's threads for the native kernels and step graphs, or 'auto' (default: ${defaultThreadsText()}; more than 1 rounds differently)`,
      threadCount,
    );
}

export function addModelOption(cmd: Command, defaultModel = 'small-cnn'): Command {
  return cmd.addOption(
    new Option('--model <name>', `model to build (default: ${defaultModel})`).choices(MODEL_NAMES),
  );
}

/**
 * `sizes: false` leaves out --train-size and --test-size, for commands that choose how many
 * examples they take (bench: four batches; analyze: --batch-size x --batches), where they would
 * be accepted and ignored.
 */
export function addDataOptions(cmd: Command, { sizes = true } = {}): Command {
  cmd
    .addOption(
      new Option(
        '--dataset <name>',
        'fashion-mnist-slice (shipped), fashion-mnist (full set, --data DIR), cifar10 (--data DIR), text (--data FILE or DIR) (default: fashion-mnist-slice)',
      ).choices(DATASET_NAMES),
    )
    .option(
      '--data <path>',
      'dataset directory, or for --dataset text a UTF-8 file or a directory of them',
      nonEmptyPath,
    );
  if (sizes) {
    cmd
      .option(
        '--train-size <n>',
        'use only the first n training examples (at most what the data has)',
        positiveInteger,
      )
      .option(
        '--test-size <n>',
        'use only the first n test examples (at most what the data has)',
        positiveInteger,
      );
  }
  return cmd.option(
    '--seq-length <n>',
    'characters per sequence for --dataset text (default: 64)',
    positiveInteger,
  );
}

export function addSeedOption(cmd: Command): Command {
  return cmd.option(
    '--seed <n>',
    'seed of the initial weights, data order and probes (default: 1)',
    seed,
  );
}
