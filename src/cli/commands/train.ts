/** `adahessian train`: train a model with one optimizer; metrics, model and checkpoints in --out. */
import { Command, Option } from 'commander';
import { OPTIMIZER_NAMES } from '../../optimizers/index.js';
import {
  addBackendOption,
  addDataOptions,
  addModelOption,
  addOutputOptions,
  addSeedOption,
  type OutputFlags,
} from '../common-options.js';
import { prepareBackend } from '../backend.js';
import type { CliContext } from '../context.js';
import {
  addScheduleOptions,
  hessianPower,
  nonNegativeNumber,
  positiveInteger,
  positiveNumber,
} from '../options.js';
import { say } from '../output.js';
import { formatTable } from '../table.js';
import { train, type TrainOptions, type TrainResult } from '../training.js';
import { resolveTrainConfig, type TrainSettings } from '../train-config.js';

interface TrainFlags extends OutputFlags, TrainSettings {
  out?: string;
  resume?: string;
  checkpointEvery?: number;
  force?: boolean;
  native?: boolean;
}

export function trainCommand(ctx: CliContext): Command {
  const cmd = new Command('train')
    .summary('train a model with one optimizer (metrics, model, checkpoints; --resume)')
    .description(
      'Train a model with one optimizer. With --out DIR: metrics per epoch (metrics.json, metrics.csv), the final model (model/model.json, TF.js format) and a checkpoint (checkpoint.json, written atomically); --resume DIR continues an interrupted run to the same weights.',
    )
    .helpOption('-h, --help', 'show help for train');
  addModelOption(cmd);
  addDataOptions(cmd);
  cmd
    .addOption(
      new Option('--optimizer <name>', 'optimizer (default: adahessian)').choices(OPTIMIZER_NAMES),
    )
    .option(
      '--lr <number>',
      "base learning rate (default: the optimizer's usual one)",
      positiveNumber,
    );
  addScheduleOptions(cmd);
  cmd
    .option('--epochs <n>', 'epochs (default: 3)', positiveInteger)
    .option('--batch-size <n>', 'examples per step (default: 64)', positiveInteger)
    .option(
      '--hessian-every <n>',
      'AdaHessian: Hessian diagonal every n steps (default: 1)',
      positiveInteger,
    )
    .option(
      '--block-size <n>',
      'AdaHessian: average the diagonal over blocks of n entries of dense weights (default: 1; conv kernels are averaged spatially)',
      positiveInteger,
    )
    .option(
      '--hessian-power <k>',
      'AdaHessian: Hessian power k in (0, 1] (default: 1)',
      hessianPower,
    )
    .option(
      '--weight-decay <number>',
      'decoupled weight decay (adahessian, adamw)',
      nonNegativeNumber,
    );
  addSeedOption(cmd);
  addBackendOption(cmd);
  cmd
    .option('--out <dir>', 'write metrics, the final model and checkpoints here')
    .option(
      '--resume <dir>',
      'continue the run checkpointed in DIR (settings come from it; --epochs may grow)',
    )
    .option(
      '--checkpoint-every <n>',
      'also checkpoint every n steps (default: at epoch ends; --resume keeps it)',
      positiveInteger,
    )
    .option(
      '--force',
      "replace a previous run's files in --out (without it, a directory holding a run is refused)",
    );
  addOutputOptions(cmd);
  cmd.addHelpText(
    'after',
    `
Examples:
  adahessian train --optimizer adahessian --epochs 3 --out out/run1
  adahessian train --dataset fashion-mnist --data ../shared/datasets/fashion-mnist --optimizer adam --lr 0.001
  adahessian train --resume out/run1 --epochs 5`,
  );
  cmd.action(async (flags: TrainFlags) => {
    const io = ctx.io(flags);
    const { json: _json, quiet: _quiet, ...rest } = flags;
    const options: TrainOptions = { ...rest, signal: ctx.signal };
    if (flags.resume === undefined) {
      resolveTrainConfig(rest); // bad settings fail before a backend loads
      // No --backend: the fastest path available (a resumed run keeps its checkpoint's backend).
      Object.assign(options, await prepareBackend(flags.backend, flags.native, io));
    }
    const result = await train(options, io);
    if (result.interrupted) ctx.exitCode = 130;
    if (io.json) io.stdout.write(`${JSON.stringify(trainJson(result), null, 2)}\n`);
    else say(io, trainSummary(result));
  });
  return cmd;
}

export function trainJson(result: TrainResult): Record<string, unknown> {
  const { model: _model, ...rest } = result;
  return rest;
}

export function trainSummary(result: TrainResult): string {
  const c = result.config;
  // Language models: the test loss in bits per character too (nats / ln 2).
  const text = c.dataset === 'text';
  const rows = result.metrics.map((m) => [
    m.epoch,
    m.trainLoss,
    m.trainAccuracy * 100,
    m.testLoss,
    m.testAccuracy * 100,
    ...(text ? [m.testLoss / Math.LN2] : []),
    m.msPerStep,
  ]);
  const lines = [
    `${c.optimizer} (lr ${c.lr}${scheduleText(c)}) on ${c.model} / ${c.dataset}, batch ${c.batchSize}, seed ${c.seed}, ${c.backend}`,
    formatTable(
      [
        'epoch',
        'train loss',
        'train acc %',
        'test loss',
        'test acc %',
        ...(text ? ['test bits/char'] : []),
        'ms/step',
      ],
      rows,
      { digits: [0, 4, 2, 4, 2, ...(text ? [4] : []), 1] },
    ),
  ];
  const files = Object.entries(result.files);
  if (files.length > 0) lines.push('', ...files.map(([k, v]) => `${k}: ${v}`));
  return lines.join('\n');
}

/** ", cosine, warm-up 100" and the like; nothing for a constant rate without warm-up. */
export function scheduleText(c: { schedule: string; warmupSteps: number }): string {
  if (c.schedule === 'constant' && c.warmupSteps === 0) return '';
  return `, ${c.schedule}${c.warmupSteps > 0 ? `, warm-up ${c.warmupSteps}` : ''}`;
}
