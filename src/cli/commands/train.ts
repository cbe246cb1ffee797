/**
 * `adahessian train`: train a model with one optimizer; metrics, model and checkpoints in --out.
 * With --seeds or --optimizers: one run per optimizer and seed, a table of mean +- std (train-many.ts).
 */
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
import { pathText, prepareBackend, type StepGraphChoice } from '../backend.js';
import type { CliContext } from '../context.js';
import {
  addScheduleOptions,
  HESSIAN_WARMUP_HELP,
  hessianPower,
  listOf,
  nonEmptyPath,
  nonNegativeInteger,
  nonNegativeNumber,
  optimizerWithRate,
  positiveInteger,
  positiveNumber,
  seedList,
  type OptimizerWithRate,
} from '../options.js';
import { say } from '../output.js';
import { mainHeader, mainResult } from '../seed-stats.js';
import { formatTable } from '../table.js';
import { train, type TrainOptions, type TrainResult } from '../training.js';
import { isTrainMany, trainMany, type TrainManyResult } from '../train-many.js';
import { resolveTrainConfig, type TrainSettings } from '../train-config.js';

interface TrainFlags extends OutputFlags, TrainSettings {
  out?: string;
  resume?: string;
  checkpointEvery?: number;
  force?: boolean;
  native?: boolean;
  stepGraphs?: StepGraphChoice;
  threads?: number;
  optimizers?: OptimizerWithRate[];
  seeds?: number[];
}

export function trainCommand(ctx: CliContext): Command {
  const cmd = new Command('train')
    .summary(
      'train a model (metrics, model, checkpoints; --resume); --seeds/--optimizers: one run each, mean +- std',
    )
    .description(
      'Train a model with one optimizer. With --out DIR: metrics per epoch (metrics.json, metrics.csv), the final model (model/model.json, TF.js format) and a checkpoint (checkpoint.json, written atomically); --resume DIR continues an interrupted run to the same weights. --seeds and --optimizers train one run per optimizer and seed and print mean +- std per optimizer.',
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
    )
    .option(
      '--optimizers <list>',
      'several optimizers, one run each: comma-separated NAME or NAME=LR, e.g. adam=0.001,adahessian (instead of --optimizer and --lr)',
      listOf(optimizerWithRate),
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
    .option('--hessian-warmup-steps <n>', HESSIAN_WARMUP_HELP, nonNegativeInteger)
    .option(
      '--weight-decay <number>',
      'decoupled weight decay (adahessian, adamw)',
      nonNegativeNumber,
    );
  addSeedOption(cmd);
  cmd.option(
    '--seeds <list>',
    'one run per seed, e.g. 1,2,3: a table of mean +- std (with --optimizers too: every optimizer with every seed)',
    seedList,
  );
  addBackendOption(cmd);
  cmd
    .option(
      '--out <dir>',
      'write metrics, the final model and checkpoints here (with --seeds/--optimizers: each run in DIR/<run>/)',
      nonEmptyPath,
    )
    .option(
      '--resume <dir>',
      'continue the run checkpointed in DIR, or finish the runs of DIR/train-runs.json (settings, backend and --native/--step-graphs/--threads come from it; --epochs may grow)',
      nonEmptyPath,
    )
    .option(
      '--checkpoint-every <n>',
      'also checkpoint every n steps (default: at epoch ends; --resume keeps it)',
      positiveInteger,
    )
    .option(
      '--force',
      "replace a previous run's files in --out (without it, a directory holding a run is refused; not with --resume alone, which continues its run)",
    );
  addOutputOptions(cmd);
  cmd.addHelpText(
    'after',
    `
Examples:
  adahessian train --optimizer adahessian --epochs 3 --out out/run1
  adahessian train --dataset fashion-mnist --data ../shared/datasets/fashion-mnist --optimizer adam --lr 0.001
  adahessian train --resume out/run1 --epochs 5
  adahessian train --optimizers adam=0.001,adahessian=0.15 --seeds 1,2,3 --out out/runs
  adahessian train --resume out/runs

With --seeds or --optimizers, train runs every optimizer with every seed on the same data and
schedule and prints a table of mean +- std per optimizer (test accuracy, or bits per character
on text; test loss, final train loss, s/epoch); --json prints {settings, rows, runs, ...}, whose
"rows" are the table's rows.`,
  );
  cmd.action(async (flags: TrainFlags) => {
    const io = ctx.io(flags);
    const { json: _json, quiet: _quiet, ...rest } = flags;
    if (isTrainMany(rest)) {
      const result = await trainMany({ ...rest, signal: ctx.signal }, io);
      if (result.interrupted) ctx.exitCode = 130;
      if (io.json) io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      // Stopped before any run finished: the stop note says so; an empty table would not.
      else if (result.rows.length > 0 || !result.interrupted) say(io, trainManyTable(result));
      return;
    }
    const { optimizers: _optimizers, seeds: _seeds, ...single } = rest;
    const options: TrainOptions = { ...single, signal: ctx.signal };
    if (flags.resume === undefined) {
      resolveTrainConfig(single); // bad settings fail before a backend loads
      // No --backend: the fastest path available (a resumed run keeps its checkpoint's backend).
      const { threads, ...path } = await prepareBackend(
        flags.backend,
        flags.native,
        io,
        flags.stepGraphs,
        flags.threads,
      );
      Object.assign(options, path, threads !== null ? { threads } : {});
    }
    const result = await train(options, io);
    if (result.interrupted) ctx.exitCode = 130;
    if (io.json) io.stdout.write(`${JSON.stringify(trainJson(result), null, 2)}\n`);
    else say(io, trainSummary(result));
  });
  return cmd;
}

/**
 * `train --json`'s document: the result without the model, each epoch's metrics with the test
 * loss in bits per character (nats / ln 2) on text and null otherwise, as the rows of
 * `--seeds/--optimizers` give it (testBitsPerCharMean).
 */
export function trainJson(result: TrainResult): Record<string, unknown> {
  const { model: _model, ...rest } = result;
  const text = result.config.dataset === 'text';
  const metrics = result.metrics.map((m) => ({
    ...m,
    testBitsPerChar: text ? m.testLoss / Math.LN2 : null,
  }));
  return { ...rest, metrics };
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
    `${c.optimizer} (lr ${c.lr}${scheduleText(c)}) on ${c.model} / ${c.dataset}, batch ${c.batchSize}, seed ${c.seed}, ${pathText({ ...result, backend: c.backend })}`,
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

/** The table of `train --seeds/--optimizers`: one row per optimizer, mean +- std over seeds. */
export function trainManyTable(result: TrainManyResult): string {
  const s = result.settings;
  const text = s.dataset === 'text';
  const lines = [
    `${s.model} / ${s.dataset}, ${s.epochs} epoch(s), batch ${s.batchSize}${scheduleText(s)}, ${pathText(s)}; ` +
      `mean +- std over seeds ${s.seeds.join(',')}:`,
    formatTable(
      ['optimizer', 'lr', 'seeds', mainHeader(text), 'test loss', 'train loss', 's/epoch'],
      result.rows.map((r) => [
        r.optimizer,
        String(r.lr),
        r.seeds,
        mainResult(r, text),
        r.testLossMean,
        r.trainLossMean,
        r.secondsPerEpochMean,
      ]),
      { digits: [undefined, undefined, 0, undefined, 4, 4, 1] },
    ),
  ];
  const dirs = result.runs.filter((r) => r.dir !== undefined);
  if (dirs.length > 0) {
    lines.push('', ...dirs.map((r) => `${r.dir}${r.reused ? ' (finished earlier)' : ''}`));
  }
  if (result.files.runs !== undefined) lines.push(`wrote ${result.files.runs}`);
  return lines.join('\n');
}
