/**
 * `adahessian demo` (what `npm start` runs): the small CNN trained on the shipped
 * Fashion-MNIST slice with Adam and with AdaHessian (same data, epochs and seed), a comparison
 * table, the Hessian analysis of both trained models, and an HTML report with the plots.
 * Sized to finish in under five minutes on two cores.
 */
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import type { BackendName } from '../../backends.js';
import { renderHtmlReport, type HtmlSection } from '../../report/html.js';
import {
  analyzeModel,
  writeAnalysis,
  type AnalysisOutcome,
  type AnalysisSettings,
} from '../analysis.js';
import { checkOutputDirectory, removeStaleTempFiles, writeFileAtomic } from '../atomic-file.js';
import { pathText, prepareBackend, type BackendChoice, type StepGraphChoice } from '../backend.js';
import {
  addBackendOption,
  addOutputOptions,
  addSeedOption,
  type OutputFlags,
} from '../common-options.js';
import type { CliContext } from '../context.js';
import { CliUsageError } from '../errors.js';
import { loadDataset } from '../datasets.js';
import { linePlotSvg } from '../line-plot.js';
import { nonEmptyPath, positiveInteger } from '../options.js';
import { acquireRunLock } from '../run-lock.js';
import { note, say, type CliIo } from '../output.js';
import { formatDuration } from '../progress.js';
import { formatTable } from '../table.js';
import { train, type TrainResult } from '../training.js';
import { resolveTrainConfig, type TrainSettings } from '../train-config.js';

export interface DemoOptions {
  epochs?: number;
  trainSize?: number;
  testSize?: number;
  batchSize?: number;
  /** Examples in the analysed batch (default 128). */
  analysisBatch?: number;
  backend?: BackendName;
  native?: boolean;
  /** --step-graphs (src/cli/backend.ts). */
  stepGraphs?: StepGraphChoice;
  /** --threads: ONNX Runtime's threads with the native kernels (src/cli/backend.ts). */
  threads?: number;
  seed?: number;
  /** Where the report goes (default out/demo). */
  out?: string;
  /** Budgets of the Hessian analysis (defaults below; tests shrink them). */
  analysis?: AnalysisSettings;
}

export const DEMO_ANALYSIS: AnalysisSettings = {
  topN: 2,
  eigenIters: 30,
  traceIters: 20,
  densityIters: 30,
};

export const DEMO_DEFAULTS = {
  epochs: 3,
  trainSize: 3000,
  testSize: 1000,
  batchSize: 64,
  analysisBatch: 64,
  seed: 1,
  out: join('out', 'demo'),
};

const OPTIMIZERS = ['adam', 'adahessian'] as const;

/**
 * The demo's training settings, the optimizer left to each run: the small CNN on the shipped
 * Fashion-MNIST slice (bench/speed/demo-*.ts time the demo's steps with these too).
 */
export function demoTrainSettings(
  s: Pick<typeof DEMO_DEFAULTS, 'epochs' | 'trainSize' | 'testSize' | 'batchSize' | 'seed'> & {
    backend: BackendName;
  },
): TrainSettings {
  return {
    model: 'small-cnn',
    dataset: 'fashion-mnist-slice',
    epochs: s.epochs,
    trainSize: s.trainSize,
    testSize: s.testSize,
    batchSize: s.batchSize,
    seed: s.seed,
    backend: s.backend,
  };
}

export interface DemoRun {
  optimizer: (typeof OPTIMIZERS)[number];
  lr: number;
  testAccuracy: number;
  testLoss: number;
  trainLoss: number;
  msPerStep: number;
  /** Time per step relative to Adam's. */
  xAdam: number;
  metrics: TrainResult['metrics'];
  stepLosses: number[];
  analysis: AnalysisOutcome;
}

/** One row of the comparison table: the printed table's, the report's and --json's. */
export interface DemoRow {
  optimizer: DemoRun['optimizer'];
  lr: number;
  testAccuracy: number;
  testLoss: number;
  trainLoss: number;
  msPerStep: number;
  xAdam: number;
  topEigenvalue: number | null;
  trace: number | null;
}

export interface DemoResult {
  settings: typeof DEMO_DEFAULTS & BackendChoice;
  /** The comparison table's rows. */
  rows: DemoRow[];
  runs: DemoRun[];
  seconds: number;
  files: { report: string; [name: string]: string };
}

/**
 * One demo per --out at a time (the lock of run-lock.ts, as train, sweep and analyze): two demos
 * into one directory would overwrite each other's report and plots half-way.
 */
export async function demo(options: DemoOptions, io: CliIo): Promise<DemoResult> {
  const out = options.out ?? DEMO_DEFAULTS.out;
  checkOutputDirectory(out);
  const lock = acquireRunLock(out, '--out', (message) => note(io, message));
  removeStaleTempFiles(out); // locked: a killed writer's, never a live one's
  try {
    return await demoInLockedDirectory(options, io);
  } finally {
    lock.release();
  }
}

async function demoInLockedDirectory(options: DemoOptions, io: CliIo): Promise<DemoResult> {
  const started = performance.now();
  const { analysis: analysisOptions, ...rest } = options;
  // No --backend: the fastest path available (cpu + native kernels, else wasm).
  const path = await prepareBackend(
    options.backend,
    options.native,
    io,
    options.stepGraphs,
    options.threads,
  );
  const s = { ...DEMO_DEFAULTS, ...definedOnly(rest), ...path };
  const settings = demoTrainSettings(s);
  const data = loadDataset(resolveTrainConfig(settings));
  if (data.train.count < s.trainSize || data.test.count < s.testSize) {
    // The slice is all there is: a larger size would silently train on fewer images.
    data.dispose();
    throw new CliUsageError(
      `--train-size ${s.trainSize} / --test-size ${s.testSize}: the shipped slice has ${data.train.count} training and ${data.test.count} test images.`,
    );
  }
  note(
    io,
    `demo: small CNN on ${data.train.count} Fashion-MNIST images (${data.test.count} test), ${s.epochs} epochs, batch ${s.batchSize}, seed ${s.seed}, ${pathText(s)}`,
  );
  const trained: { result: TrainResult; lr: number }[] = [];
  const runs: DemoRun[] = [];
  try {
    for (const optimizer of OPTIMIZERS) {
      note(io, `\n== ${optimizer} ==`);
      const config = resolveTrainConfig({ ...settings, optimizer });
      const result = await train({ ...config, preloaded: data, keepModel: true }, io);
      trained.push({ result, lr: config.lr });
    }
    for (const { result, lr } of trained) {
      note(io, `\n== Hessian analysis of the ${result.config.optimizer} model ==`);
      const analysis = await analyzeModel(result.model!, data.train, {
        ...DEMO_ANALYSIS,
        batchSize: s.analysisBatch,
        seed: s.seed,
        ...analysisOptions,
      });
      note(
        io,
        `top eigenvalue ${analysis.report.topEigenvalues?.eigenvalues[0]?.toPrecision(4)}, trace ${analysis.report.trace?.trace.toPrecision(4)} (${analysis.report.products} products, ${analysis.seconds.toFixed(1)} s)`,
      );
      const last = result.metrics.at(-1)!;
      runs.push({
        optimizer: result.config.optimizer as DemoRun['optimizer'],
        lr,
        testAccuracy: last.testAccuracy,
        testLoss: last.testLoss,
        trainLoss: last.trainLoss,
        msPerStep: result.msPerStep,
        xAdam: NaN,
        metrics: result.metrics,
        stepLosses: result.stepLosses,
        analysis,
      });
    }
  } finally {
    for (const t of trained) t.result.model?.dispose();
    data.dispose();
  }
  const adam = runs.find((r) => r.optimizer === 'adam')!;
  for (const r of runs) r.xAdam = r.msPerStep / adam.msPerStep;
  const seconds = (performance.now() - started) / 1000;
  const files = writeDemoReport(s.out, s, runs, seconds);
  return { settings: s, rows: demoRows(runs), runs, seconds, files };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function demoRows(runs: DemoRun[]): DemoRow[] {
  return runs.map((r) => ({
    optimizer: r.optimizer,
    lr: r.lr,
    testAccuracy: r.testAccuracy,
    testLoss: r.testLoss,
    trainLoss: r.trainLoss,
    msPerStep: r.msPerStep,
    xAdam: r.xAdam,
    topEigenvalue: r.analysis.report.topEigenvalues?.eigenvalues[0] ?? null,
    trace: r.analysis.report.trace?.trace ?? null,
  }));
}

/** One row per optimizer, in the columns both the printed table and the report show. */
function comparisonRows(runs: DemoRun[]): (string | number | null)[][] {
  return demoRows(runs).map((r) => [
    r.optimizer,
    String(r.lr),
    r.testAccuracy * 100,
    r.testLoss,
    r.trainLoss,
    r.msPerStep,
    r.xAdam,
    r.topEigenvalue,
    r.trace,
  ]);
}

const COMPARISON_DIGITS = [undefined, undefined, 2, 4, 4, 1, 2, 2, 1];

export function comparisonTable(runs: DemoRun[]): string {
  return formatTable(
    [
      'optimizer',
      'lr',
      'test acc %',
      'test loss',
      'train loss',
      'ms/step',
      'x Adam',
      'top eig',
      'trace',
    ],
    comparisonRows(runs),
    { digits: COMPARISON_DIGITS },
  );
}

/** Per-step losses averaged over windows of `width` steps (the raw curve is noisy). */
function smoothed(values: number[], width: number): { x: number; y: number }[] {
  const out: { x: number; y: number }[] = [];
  for (let i = 0; i < values.length; i++) {
    const from = Math.max(0, i - width + 1);
    const window = values.slice(from, i + 1);
    out.push({ x: i + 1, y: window.reduce((a, b) => a + b, 0) / window.length });
  }
  return out;
}

function writeDemoReport(
  out: string,
  s: DemoResult['settings'],
  runs: DemoRun[],
  seconds: number,
): DemoResult['files'] {
  const files: DemoResult['files'] = { report: resolve(out, 'report.html') };
  const lossSvg = linePlotSvg(
    runs.map((r) => ({ name: r.optimizer, points: smoothed(r.stepLosses, 5) })),
    {
      title: 'Training loss (mean of the last 5 steps)',
      xLabel: 'step',
      yLabel: 'loss (log scale)',
      logY: true,
      markers: false,
    },
  );
  const accSvg = linePlotSvg(
    runs.map((r) => ({
      name: r.optimizer,
      points: r.metrics.map((m) => ({ x: m.epoch, y: m.testAccuracy * 100 })),
    })),
    { title: 'Test accuracy after each epoch', xLabel: 'epoch', yLabel: 'test accuracy (%)' },
  );
  writeFileAtomic((files.lossPlot = join(out, 'loss.svg')), lossSvg);
  writeFileAtomic((files.accuracyPlot = join(out, 'accuracy.svg')), accSvg);
  const analysisSections: HtmlSection[] = [];
  for (const r of runs) {
    const dir = join(out, `analysis-${r.optimizer}`);
    const written = writeAnalysis(dir, r.analysis, { optimizer: r.optimizer }, r.optimizer);
    files[`analysis-${r.optimizer}`] = written.files.json;
    const figures = [];
    const { density, layers } = written.svgs;
    if (density) {
      figures.push({
        svg: density,
        caption: `Eigenvalue density of the Hessian of the ${r.optimizer}-trained model (stochastic Lanczos quadrature, ${r.analysis.settings.densityIters} steps, log scale); dashed lines: the top eigenvalues.`,
      });
    }
    if (layers) {
      figures.push({
        svg: layers,
        caption: `Hessian trace per layer (Hutchinson, ± standard error).`,
      });
    }
    const rep = r.analysis.report;
    analysisSections.push({
      heading: `Hessian of the ${r.optimizer} model`,
      paragraphs: [
        `Loss ${r.analysis.loss.toFixed(4)} on ${r.analysis.examples} training images; top eigenvalues ${rep.topEigenvalues?.eigenvalues.map((e) => e.toPrecision(4)).join(', ')}; trace ${rep.trace?.trace.toPrecision(4)} ± ${rep.trace?.stdError.toPrecision(2)}; ${rep.products} Hessian-vector products in ${r.analysis.seconds.toFixed(1)} s.`,
      ],
      figures,
    });
  }
  const html = renderHtmlReport({
    title: 'AdaHessian vs Adam: small CNN on Fashion-MNIST',
    subtitle: `${new Date().toISOString()} · ${s.trainSize} training and ${s.testSize} test images of the shipped slice · ${s.epochs} epochs · batch ${s.batchSize} · seed ${s.seed} · TF.js ${s.backend}${s.native ? ' + native kernels' : ''} · ${formatDuration(seconds)} in all`,
    sections: [
      {
        heading: 'Comparison',
        paragraphs: [
          'Both runs start from the same weights and see the same batches in the same order. Time per step is the mean over the training steps (evaluation excluded); x Adam is its ratio to Adam’s.',
        ],
        table: {
          header: [
            'optimizer',
            'learning rate',
            'test accuracy %',
            'test loss',
            'train loss (last epoch)',
            'ms/step',
            'x Adam',
            'top eigenvalue',
            'trace',
          ],
          rows: comparisonRows(runs),
          digits: COMPARISON_DIGITS,
        },
      },
      {
        heading: 'Training',
        figures: [
          { svg: lossSvg, caption: 'Training loss per step, smoothed over 5 steps.' },
          { svg: accSvg, caption: 'Accuracy on the test images after each epoch.' },
        ],
      },
      ...analysisSections,
      {
        heading: 'Reproduce',
        code: `npx adahessian demo --epochs ${s.epochs} --train-size ${s.trainSize} --test-size ${s.testSize} --batch-size ${s.batchSize} --seed ${s.seed} --backend ${s.backend}${s.native ? ` --native --step-graphs ${s.stepGraphs} --threads ${s.threads}` : ''}`,
      },
    ],
  });
  writeFileAtomic(files.report, html);
  return files;
}

interface DemoFlags extends OutputFlags, DemoOptions {}

export function demoCommand(ctx: CliContext): Command {
  const cmd = new Command('demo')
    .summary(
      'Adam vs AdaHessian on the small CNN, Hessian analysis of both, HTML report (npm start)',
    )
    .description(
      'The demo behind `npm start`: trains the small CNN on the shipped Fashion-MNIST slice with Adam and with AdaHessian (same data, epochs and seed), prints a comparison table (test accuracy, loss, time per step and its ratio), runs the Hessian analysis on both trained models and writes an HTML report with the plots.',
    )
    .option('--epochs <n>', `epochs (default: ${DEMO_DEFAULTS.epochs})`, positiveInteger)
    .option(
      '--train-size <n>',
      `training images, at most 4000 (default: ${DEMO_DEFAULTS.trainSize})`,
      positiveInteger,
    )
    .option(
      '--test-size <n>',
      `test images, at most 1000 (default: ${DEMO_DEFAULTS.testSize})`,
      positiveInteger,
    )
    .option(
      '--batch-size <n>',
      `examples per step (default: ${DEMO_DEFAULTS.batchSize})`,
      positiveInteger,
    )
    .option(
      '--analysis-batch <n>',
      `images in the analysed batch (default: ${DEMO_DEFAULTS.analysisBatch})`,
      positiveInteger,
    );
  addSeedOption(cmd);
  addBackendOption(cmd);
  cmd.option('--out <dir>', `where the report goes (default: ${DEMO_DEFAULTS.out})`, nonEmptyPath);
  addOutputOptions(cmd);
  cmd.action(async (flags: DemoFlags) => {
    const io = ctx.io(flags);
    const result = await demo(flags, io);
    if (io.json) {
      io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      return;
    }
    say(io, '');
    say(io, comparisonTable(result.runs));
    say(io, `\nDone in ${formatDuration(result.seconds)}. Report: ${result.files.report}`);
  });
  return cmd;
}
