/** Panel 2: Adam and AdaHessian training the small CNN side by side, in the worker. */
import * as Plot from '@observablehq/plot';
import type {
  TrainCurve,
  TrainOptimizerName,
  TrainProgress,
  TrainSettings,
} from '../jobs/train.js';
import { TRAIN_OPTIMIZERS } from '../jobs/train.js';
import { fmt, FormError, readNumber, readText, setStatus, tableHtml } from '../form.js';
import type { FromWorker } from '../protocol.js';
import { onWidthChange, publishResult } from '../results.js';
import type { PlaygroundWorker } from '../main.js';

const LABELS: Readonly<Record<TrainOptimizerName, string>> = {
  adam: 'Adam',
  adahessian: 'AdaHessian',
};
const COLORS: Readonly<Record<TrainOptimizerName, string>> = {
  adam: '#1f77b4',
  adahessian: '#d62728',
};
const color = {
  domain: TRAIN_OPTIMIZERS.map((n) => LABELS[n]),
  range: TRAIN_OPTIMIZERS.map((n) => COLORS[n]),
  legend: true,
};

function readSettings(form: HTMLFormElement): TrainSettings {
  const settings: TrainSettings = {
    trainSize: readNumber(form, 'trainSize', true),
    testSize: readNumber(form, 'testSize', true),
    batchSize: readNumber(form, 'batchSize', true),
    epochs: readNumber(form, 'epochs', true),
    evalEvery: readNumber(form, 'evalEvery', true),
    seed: readNumber(form, 'seed', true),
    learningRates: {
      adam: readNumber(form, 'lr-adam'),
      adahessian: readNumber(form, 'lr-adahessian'),
    },
    hessianEvery: readNumber(form, 'hessianEvery', true),
  };
  for (const [name, v] of Object.entries(settings.learningRates)) {
    if (!(v > 0))
      throw new FormError(
        `The learning rate of ${LABELS[name as TrainOptimizerName]} must be > 0, got ${v}.`,
      );
  }
  return settings;
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function width(el: HTMLElement): number {
  return Math.max(260, Math.min(560, el.clientWidth || 480));
}

function lossChart(curves: Record<TrainOptimizerName, TrainCurve>, el: HTMLElement): Element {
  const rows = TRAIN_OPTIMIZERS.flatMap((n) =>
    curves[n].losses.map((loss, i) => ({ optimizer: LABELS[n], step: i + 1, loss })),
  ).filter((r) => r.loss > 0 && Number.isFinite(r.loss));
  return Plot.plot({
    width: width(el),
    height: 240,
    marginLeft: 48,
    x: { label: 'step' },
    y: { type: 'log', label: 'loss', grid: true },
    color,
    marks: [Plot.line(rows, { x: 'step', y: 'loss', z: 'optimizer', stroke: 'optimizer' })],
  });
}

function accuracyChart(curves: Record<TrainOptimizerName, TrainCurve>, el: HTMLElement): Element {
  const rows = TRAIN_OPTIMIZERS.flatMap((n) =>
    curves[n].evalSteps.map((step, i) => ({
      optimizer: LABELS[n],
      step,
      accuracy: curves[n].testAccuracies[i]! * 100,
    })),
  );
  return Plot.plot({
    width: width(el),
    height: 240,
    marginLeft: 48,
    x: { label: 'step' },
    y: { label: 'test accuracy (%)', domain: [0, 100], grid: true },
    color,
    marks: [
      Plot.line(rows, { x: 'step', y: 'accuracy', z: 'optimizer', stroke: 'optimizer' }),
      Plot.dot(rows, { x: 'step', y: 'accuracy', fill: 'optimizer', r: 2.5 }),
    ],
  });
}

function summary(progress: TrainProgress): string {
  const adamMs = median(progress.curves.adam.msPerStep);
  return tableHtml(
    ['optimizer', 'last batch loss', 'test loss', 'test accuracy', 'ms/step (median)', 'vs Adam'],
    TRAIN_OPTIMIZERS.map((n) => {
      const c = progress.curves[n];
      const ms = median(c.msPerStep);
      return [
        LABELS[n],
        c.losses.length ? fmt(c.losses.at(-1)!) : '–',
        c.testLosses.length ? fmt(c.testLosses.at(-1)!) : '–',
        c.testAccuracies.length ? `${(c.testAccuracies.at(-1)! * 100).toFixed(1)} %` : '–',
        Number.isFinite(ms) ? ms.toFixed(1) : '–',
        Number.isFinite(ms / adamMs) ? `${(ms / adamMs).toFixed(2)}×` : '–',
      ];
    }),
  );
}

export function setupTrainPanel(
  worker: PlaygroundWorker,
  onTrained: (backend: string) => void,
): void {
  const section = document.getElementById('train')!;
  const form = document.getElementById('train-form') as HTMLFormElement;
  const status = document.getElementById('train-status')!;
  const runButton = document.getElementById('train-run') as HTMLButtonElement;
  const stopButton = document.getElementById('train-stop') as HTMLButtonElement;
  const lossEl = document.getElementById('train-loss')!;
  const accuracyEl = document.getElementById('train-accuracy')!;
  const tableEl = document.getElementById('train-table')!;
  let settings: TrainSettings | null = null;
  let backend = '';
  let lastDraw = 0;
  let lastProgress: TrainProgress | null = null;

  const draw = (p: TrainProgress) => {
    lastProgress = p;
    lossEl.replaceChildren(lossChart(p.curves, lossEl));
    accuracyEl.replaceChildren(accuracyChart(p.curves, accuracyEl));
    tableEl.innerHTML = summary(p);
  };
  const finish = (text: string, state: 'done' | 'stopped' | 'error') => {
    runButton.disabled = false;
    stopButton.disabled = true;
    section.dataset.state = state;
    setStatus(status, text, state === 'error');
  };

  worker.listen((m: FromWorker) => {
    if (m.type === 'status' && m.job === 'train') setStatus(status, m.text);
    else if (m.type === 'progress') {
      setStatus(status, `Step ${m.progress.step} of ${m.progress.totalSteps} on ${backend}…`);
      // Redraw at most ~5 times a second; the worker may step faster than that.
      const now = performance.now();
      if (now - lastDraw > 200) {
        lastDraw = now;
        draw(m.progress);
      }
    } else if (m.type === 'trained') {
      draw(m.progress);
      publishResult('train', {
        settings,
        backend: m.backend,
        curves: m.progress.curves,
        stopped: m.stopped,
      });
      finish(
        `${m.stopped ? 'Stopped' : 'Done'} after ${m.progress.step} steps on ${m.backend}. ms/step is wall-clock time in this browser, both models on the same backend.`,
        m.stopped ? 'stopped' : 'done',
      );
      if (m.progress.step > 0) onTrained(m.backend);
    } else if (m.type === 'error' && m.job === 'train') {
      finish(`Failed: ${m.message}`, 'error');
    }
  });

  onWidthChange(() => {
    if (lastProgress) draw(lastProgress);
  });

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    try {
      settings = readSettings(form);
    } catch (e) {
      finish((e as Error).message, 'error');
      return;
    }
    backend = readText(form, 'backend');
    section.dataset.state = 'running';
    runButton.disabled = true;
    stopButton.disabled = false;
    lastDraw = 0;
    setStatus(status, 'Starting…');
    worker.post({ type: 'train', backend, settings });
  });
  stopButton.addEventListener('click', () => {
    setStatus(status, 'Stopping after the current step…');
    worker.post({ type: 'stop' });
  });
}
