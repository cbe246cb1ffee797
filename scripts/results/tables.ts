/**
 * The tables of docs/RESULTS.md: for each, the `adahessian` command that produces it (its
 * rows are what the command prints with --json) and what it needs first. Shared by the runner
 * (run-all.ts) and the page generator (make-results-md.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..', '..');
export const RESULTS_DIR = join(ROOT, 'docs', 'results');

/** What docs/results/<name>.json holds. */
export interface ResultFile {
  command: string;
  /** Wall-clock seconds of the command (summed over resumed invocations; see run-all.ts). */
  seconds: number;
  /** The machine it ran on, in words (wall times depend on it and its load). */
  machine: string;
  finishedAt: string;
  rows: Record<string, unknown>[];
}

export interface Table {
  name: string;
  title: string;
  /** The command's arguments after `adahessian`, or null while a prerequisite is missing. */
  args(): string[] | null;
  /** Why args() is null. */
  needs?: string;
}

/**
 * Every table runs on the same backend, named in its command, and pins which steps ran as step
 * graphs (--step-graphs), since that changes the numbers by float32 rounding: the image tables
 * ran op by op (step graphs had no translation for the CNN's convolutions then), the
 * language-model table with AdaHessian's steps replayed and AdamW's op by op (the default then).
 * They pin ONNX Runtime's one thread too (--threads 1, the default when they ran; the default
 * now follows the machine, src/native/threads.ts, and more threads round differently).
 */
const BACKEND = ['--backend', 'cpu', '--native', '--step-graphs', 'off', '--threads', '1'];
const TEXT_BACKEND = [
  '--backend',
  'cpu',
  '--native',
  '--step-graphs',
  'adahessian',
  '--threads',
  '1',
];
/** The shipped slice: 2048 training and 1000 test images, 2 epochs of 32 steps of 64. */
const SLICE = [
  '--train-size',
  '2048',
  '--test-size',
  '1000',
  '--epochs',
  '2',
  '--batch-size',
  '64',
];
const IMAGE_OPTIMIZERS = 'momentum,adam,adamw,adahessian';

export function readResult(name: string): ResultFile | null {
  const file = join(RESULTS_DIR, `${name}.json`);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as ResultFile) : null;
}

/**
 * Each optimizer's best base rate in a finished learning-rate sweep: the rate of the scale
 * with the highest mean test accuracy among the cells where no seed diverged.
 */
export function bestRates(name: string): Record<string, number> | null {
  const result = readResult(name);
  if (result === null) return null;
  const best: Record<string, { lr: number; acc: number }> = {};
  for (const r of result.rows as {
    optimizer: string;
    lr: number;
    diverged: number;
    testAccuracyMean: number | null;
  }[]) {
    if (r.diverged > 0 || r.testAccuracyMean == null) continue;
    const seen = best[r.optimizer];
    if (seen === undefined || r.testAccuracyMean > seen.acc) {
      best[r.optimizer] = { lr: r.lr, acc: r.testAccuracyMean };
    }
  }
  return Object.fromEntries(Object.entries(best).map(([k, v]) => [k, v.lr]));
}

export const TABLES: Table[] = [
  {
    name: 'quick',
    title: 'Quick check: four optimizers at their usual rates, 3 seeds (a few minutes)',
    args: () => [
      'sweep',
      '--optimizers',
      IMAGE_OPTIMIZERS,
      '--scales',
      '1',
      '--no-block',
      '--seeds',
      '1,2,3',
      ...SLICE,
      ...BACKEND,
      '--out',
      'out/results/quick',
    ],
  },
  {
    name: 'lr-image',
    title: 'Learning-rate robustness, small CNN on the slice, no warm-up',
    args: () => [
      'sweep',
      '--optimizers',
      IMAGE_OPTIMIZERS,
      '--no-block',
      '--seeds',
      '1,2,3',
      ...SLICE,
      ...BACKEND,
      '--out',
      'out/results/lr-image',
    ],
  },
  {
    name: 'lr-image-warmup',
    title: 'Learning-rate robustness, small CNN on the slice, 16-step linear warm-up',
    args: () => [
      'sweep',
      '--optimizers',
      IMAGE_OPTIMIZERS,
      '--no-block',
      '--seeds',
      '1,2,3',
      '--warmup-steps',
      '16',
      ...SLICE,
      ...BACKEND,
      '--out',
      'out/results/lr-image-warmup',
    ],
  },
  {
    name: 'ablation',
    title: 'AdaHessian: block size and Hessian power',
    args: () => [
      'sweep',
      '--no-lr',
      '--block-sizes',
      '1,4,16,64,128',
      '--hessian-powers',
      '0.5,1',
      '--seeds',
      '1,2,3',
      ...SLICE,
      ...BACKEND,
      '--out',
      'out/results/ablation',
    ],
  },
  {
    name: 'cost-time',
    title: 'Cost: time per step relative to SGD and Adam (Table 6 shape)',
    args: () => ['bench', '--batch-size', '64', '--rounds', '7', ...BACKEND],
  },
  {
    name: 'cost-accuracy',
    title: 'Cost: test accuracy with the Hessian every f steps',
    args: () => [
      'sweep',
      '--no-lr',
      '--block-sizes',
      '1',
      '--hessian-every',
      '1,2,3,4,5',
      '--seeds',
      '1,2,3',
      ...SLICE,
      ...BACKEND,
      '--out',
      'out/results/cost-accuracy',
    ],
  },
  {
    name: 'cost-accuracy-warmup',
    title: 'Cost: test accuracy with the Hessian every f steps, 16-step learning-rate warm-up',
    args: () => [
      'sweep',
      '--no-lr',
      '--block-sizes',
      '1',
      '--hessian-every',
      '1,2,3,4,5',
      '--warmup-steps',
      '16',
      '--seeds',
      '1,2,3',
      ...SLICE,
      ...BACKEND,
      '--out',
      'out/results/cost-accuracy-warmup',
    ],
  },
  {
    name: 'fashion-mnist',
    title: 'Full Fashion-MNIST, small CNN, 5 epochs, warm-up then cosine decay, best rates',
    needs: 'lr-image-warmup (each optimizer takes its best rate from that grid)',
    args: () => {
      const rates = bestRates('lr-image-warmup');
      if (rates === null) return null;
      const list = IMAGE_OPTIMIZERS.split(',').map((o) => `${o}=${rates[o]}`);
      return [
        'sweep',
        '--dataset',
        'fashion-mnist',
        '--data',
        '../shared/datasets/fashion-mnist',
        '--train-size',
        '60000',
        '--test-size',
        '10000',
        '--epochs',
        '5',
        '--batch-size',
        '128',
        '--schedule',
        'cosine',
        '--warmup-steps',
        '200',
        '--optimizers',
        list.join(','),
        '--scales',
        '1',
        '--no-block',
        '--seeds',
        '1,2,3',
        ...BACKEND,
        '--out',
        'out/results/fashion-mnist',
      ];
    },
  },
  {
    name: 'lr-text',
    title:
      'Learning-rate robustness, character transformer on Debian fortunes, warm-up then inverse-sqrt',
    args: () => [
      'sweep',
      '--model',
      'char-transformer',
      '--dataset',
      'text',
      '--data',
      '/usr/share/games/fortunes',
      '--seq-length',
      '32',
      '--train-size',
      '1600',
      '--test-size',
      '400',
      '--batch-size',
      '16',
      '--epochs',
      '1',
      '--schedule',
      'inverse-sqrt',
      '--warmup-steps',
      '20',
      '--optimizers',
      'adamw,adahessian',
      '--no-block',
      '--seeds',
      '1,2,3',
      ...TEXT_BACKEND,
      '--out',
      'out/results/lr-text',
    ],
  },
];

/** The command as a user types it (the runner adds --json, --quiet and --resume). */
export function commandLine(args: string[]): string {
  return ['npx', 'adahessian', ...args].join(' ');
}
