/** `adahessian analyze`: Hessian analysis of a saved model on a dataset; JSON and SVG plots. */
import { join } from 'node:path';
import { Command, Option } from 'commander';
import type { BackendName } from '../../backends.js';
import {
  analysisSummary,
  analyzeModel,
  writeAnalysis,
  type AnalysisSettings,
} from '../analysis.js';
import { autoMicroBatchSize } from '../../analysis/index.js';
import { checkOutputDirectory, removeStaleTempFiles } from '../atomic-file.js';
import { prepareBackend, type StepGraphChoice } from '../backend.js';
import {
  addBackendOption,
  addDataOptions,
  addOutputOptions,
  addSeedOption,
  type OutputFlags,
} from '../common-options.js';
import type { CliContext } from '../context.js';
import { CliRunError, CliUsageError } from '../errors.js';
import { loadDataset, type DatasetName } from '../datasets.js';
import { loadModel } from '../model-io.js';
import { nonEmptyPath, positiveInteger, positiveNumber } from '../options.js';
import { acquireRunLock, type RunLock } from '../run-lock.js';
import { note, say, type CliIo } from '../output.js';
import type { TrainConfig } from '../train-config.js';

export interface AnalyzeOptions extends AnalysisSettings {
  /** A model.json, a directory with one, or a `train --out` directory. */
  model: string;
  dataset?: DatasetName;
  data?: string;
  seqLength?: number;
  split?: 'train' | 'test';
  backend?: BackendName;
  native?: boolean;
  /** --step-graphs (src/cli/backend.ts; analysis itself takes no training steps). */
  stepGraphs?: StepGraphChoice;
  /** --threads: ONNX Runtime's threads with the native kernels (src/cli/backend.ts). */
  threads?: number;
  /** Where analysis.json and the plots go (default out/analysis). */
  out?: string;
  /** Show an error's stack trace instead of one line (e.g. running out of memory). */
  debug?: boolean;
}

export async function analyze(options: AnalyzeOptions, io: CliIo) {
  const { backend, native, stepGraphs, threads } = await prepareBackend(
    options.backend,
    options.native,
    io,
    options.stepGraphs,
    options.threads,
  );
  const { model, metadata, path } = await loadModel(options.model);
  let lock: RunLock | undefined;
  try {
    // Before the analysis (the work), after the model path is known good: a mistyped model
    // leaves no empty output directory behind.
    const out = options.out ?? join('out', 'analysis');
    checkOutputDirectory(out);
    // One writer per directory (run-lock.ts, as train and sweep): two analyses into one --out
    // would interleave their analysis.json and plots.
    lock = acquireRunLock(out, '--out', (message) => note(io, message));
    removeStaleTempFiles(out); // locked: a killed writer's, never a live one's
    // Unless told otherwise, analyse on the data the model was trained on.
    const trained = (metadata.config ?? {}) as Partial<TrainConfig>;
    const dataset = options.dataset ?? trained.dataset ?? 'fashion-mnist-slice';
    const sameData = options.dataset === undefined || options.dataset === trained.dataset;
    const split = options.split ?? 'train';
    const needed = (options.batchSize ?? 128) * (options.batches ?? 1);
    const data = loadDataset({
      dataset,
      data: options.data ?? (sameData ? trained.data : undefined),
      seqLength: options.seqLength ?? (sameData ? trained.seqLength : undefined),
      trainSize: split === 'train' ? needed : 1,
      testSize: split === 'test' ? needed : 1,
    });
    try {
      // Another dataset than the model's is bad input: one line naming both shapes.
      const given = (split === 'train' ? data.train : data.test).x.shape.slice(1);
      const takes = model.inputs[0]!.shape.slice(1);
      if (takes.length !== given.length || takes.some((d, i) => d !== null && d !== given[i])) {
        throw new CliUsageError(
          `--dataset ${dataset} does not fit ${path}: the model takes examples of shape ` +
            `[${takes.map((d) => d ?? 'any').join(', ')}], the data gives [${given.join(', ')}].`,
        );
      }
      const microBatch =
        typeof options.microBatch === 'number' ? options.microBatch : autoMicroBatchSize(model);
      const analysed = split === 'train' ? data.train : data.test;
      note(
        io,
        `analyze: ${path} on ${examplesText(needed, analysed.count)} ${split} examples of ${dataset} (${backend}${native ? ' + native kernels' : ''}` +
          (microBatch < Math.min(options.batchSize ?? 128, analysed.count)
            ? `, micro-batches of at most ${microBatch}`
            : '') +
          ')',
      );
      const outcome = await analyzeModel(model, analysed, {
        ...options,
        microBatch,
      });
      const where = { model: path, dataset, split, backend, native, stepGraphs, threads };
      const { files } = writeAnalysis(out, outcome, where, 'Hessian');
      return { ...where, ...outcome, files };
    } finally {
      data.dispose();
    }
  } finally {
    model.dispose();
    lock?.release();
  }
}

/** "128", or where the split is smaller than asked, "all 32 (of 128 asked)". */
function examplesText(asked: number, available: number): string {
  return available < asked ? `all ${available} (of ${asked} asked)` : String(asked);
}

interface AnalyzeFlags extends OutputFlags, Omit<AnalyzeOptions, 'model'> {}

export function analyzeCommand(ctx: CliContext): Command {
  const cmd = new Command('analyze')
    .summary('Hessian analysis of a saved model: top eigenvalues, trace, density, per layer')
    .description(
      'Hessian analysis of a saved model on a dataset (PyHessian-style): top eigenvalues (Lanczos), trace (Hutchinson), eigenvalue density (stochastic Lanczos quadrature) and per-layer traces; writes analysis.json and SVG plots to --out.',
    )
    .argument(
      '<model>',
      'a train --out directory, a model directory or a model.json (TF.js layers format)',
    );
  addDataOptions(cmd, { sizes: false }); // it takes --batch-size x --batches examples
  cmd
    .addOption(
      new Option('--split <name>', 'which split to analyse on (default: train)').choices([
        'train',
        'test',
      ]),
    )
    .option('--batch-size <n>', 'examples per batch (default: 128)', positiveInteger)
    .option('--batches <n>', 'batches to average over (default: 1, as PyHessian)', positiveInteger)
    .option('--top-n <n>', 'top eigenvalues (default: 3)', positiveInteger)
    .option('--eigen-iters <n>', 'Lanczos product budget (default: 100)', positiveInteger)
    .option('--trace-iters <n>', 'Hutchinson probes at most (default: 100)', positiveInteger)
    .option('--density-iters <n>', 'Lanczos steps for the density (default: 80)', positiveInteger)
    .option('--density-runs <n>', 'independent density runs (default: 1)', positiveInteger)
    .option('--layer-eigenvalues', "also each layer's top eigenvalue (more products)")
    .addOption(
      new Option('--eigen-method <name>', 'top eigenvalues by (default: lanczos)').choices([
        'lanczos',
        'power',
      ]),
    )
    .option(
      '--eigen-tol <x>',
      'stop when every top pair has ||Hv - lv|| <= x |l| (default: 1e-3)',
      positiveNumber,
    )
    .option(
      '--micro-batch <n>',
      "examples per Hessian-vector product pass: bounds memory, same result (default: what the backend's memory holds, about 50 for ResNet-20 on wasm)",
      positiveInteger,
    )
    .option('--debug', 'show the stack trace of an error instead of one line');
  addSeedOption(cmd);
  addBackendOption(cmd);
  cmd.option(
    '--out <dir>',
    'where analysis.json and the plots go (default: out/analysis)',
    nonEmptyPath,
  );
  addOutputOptions(cmd);
  cmd.addHelpText(
    'after',
    `
The dataset defaults to the one the model was trained on (recorded in model.json). Examples:
  adahessian train --out out/run1 && adahessian analyze out/run1
  adahessian analyze out/run1/model --batches 4 --top-n 5 --out out/run1/analysis --json`,
  );
  cmd.action(async (model: string, flags: AnalyzeFlags) => {
    const io = ctx.io(flags);
    let result: Awaited<ReturnType<typeof analyze>>;
    try {
      result = await analyze({ ...flags, model }, io);
    } catch (error) {
      // --debug: the original error (its stack), not the one line made from it.
      if (flags.debug && error instanceof CliRunError && error.cause !== undefined)
        throw error.cause;
      throw error;
    }
    if (io.json) io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else {
      say(io, analysisSummary(result));
      say(
        io,
        Object.values(result.files)
          .map((f) => `wrote ${f}`)
          .join('\n'),
      );
    }
  });
  return cmd;
}
