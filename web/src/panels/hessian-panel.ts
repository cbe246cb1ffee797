/** Panel 3: the Hessian explorer on a model trained in panel 2 (computed in the worker). */
import {
  landscape1dSvg,
  landscape2dSvg,
  layerCurvatureSvg,
  spectralDensitySvg,
} from '../../../src/index.js';
import {
  checkHessianSettings,
  HESSIAN_STAGES,
  type HessianResult,
  type HessianSettings,
} from '../jobs/hessian.js';
import type { TrainOptimizerName } from '../jobs/train.js';
import { fmt, FormError, readNumber, readText, setStatus, tableHtml } from '../form.js';
import type { FromWorker } from '../protocol.js';
import { publishResult } from '../results.js';
import type { PlaygroundWorker } from '../main.js';

function readSettings(form: HTMLFormElement): HessianSettings {
  const settings: HessianSettings = {
    batchSize: readNumber(form, 'batchSize', true),
    topN: readNumber(form, 'topN', true),
    lanczosIterations: readNumber(form, 'lanczosIterations', true),
    traceProbes: readNumber(form, 'traceProbes', true),
    densityIterations: readNumber(form, 'densityIterations', true),
    landscapeSteps: readNumber(form, 'landscapeSteps', true),
    landscapeRadius: readNumber(form, 'landscapeRadius'),
    seed: readNumber(form, 'seed', true),
  };
  // The worker checks the image count against the data; the rest can be checked here.
  const problems = checkHessianSettings(settings, Number.MAX_SAFE_INTEGER);
  if (problems.length > 0) throw new FormError(problems[0]);
  return settings;
}

function summary(r: HessianResult, model: string): string {
  const rows: (string | number)[][] = [
    ['model', model],
    ['parameters', r.parameters.toLocaleString('en')],
    ['images in the batch', r.batchSize],
    ['loss on the batch', fmt(r.loss)],
    ...r.eigenvalues.map((e, i): (string | number)[] => [
      `eigenvalue ${i + 1} (Lanczos)`,
      `${fmt(e)}${r.eigenvaluesConverged[i] ? '' : ' (not converged)'}`,
    ]),
    ['trace (Hutchinson)', `${fmt(r.trace)} ± ${fmt(r.traceStdError, 2)}`],
    ['Hessian-vector products', r.products],
  ];
  return tableHtml(['quantity', 'value'], rows);
}

export function setupHessianPanel(worker: PlaygroundWorker): { enable(backend: string): void } {
  const section = document.getElementById('hessian')!;
  const form = document.getElementById('hessian-form') as HTMLFormElement;
  const status = document.getElementById('hessian-status')!;
  const runButton = document.getElementById('hessian-run') as HTMLButtonElement;
  const progress = document.getElementById('hessian-progress') as HTMLProgressElement;
  const out = (id: string) => document.getElementById(`hessian-${id}`)!;
  let settings: HessianSettings | null = null;
  let backend = '';
  let running = false;

  const finish = (text: string, state: 'done' | 'error') => {
    running = false;
    runButton.disabled = false;
    section.dataset.state = state;
    setStatus(status, text, state === 'error');
  };

  worker.listen((m: FromWorker) => {
    if (m.type === 'stage' && running) {
      progress.value = m.index;
      if (m.stage)
        setStatus(status, `Computing the ${m.stage} (${m.index + 1} of ${HESSIAN_STAGES.length})…`);
    } else if (m.type === 'analysis') {
      const r = m.result;
      const name = m.model === 'adam' ? 'trained with Adam' : 'trained with AdaHessian';
      out('table').innerHTML = summary(r, name);
      out('density').innerHTML = spectralDensitySvg(r.density, { width: 520, height: 340 });
      out('layers').innerHTML = layerCurvatureSvg(r.perLayer, { width: 520 });
      out('landscape1d').innerHTML = landscape1dSvg(r.landscape1d, { width: 520, height: 340 });
      out('landscape2d').innerHTML = landscape2dSvg(r.landscape2d, { width: 520, height: 400 });
      progress.value = HESSIAN_STAGES.length;
      publishResult('hessian', { settings, model: m.model, backend, result: r });
      finish(
        `Done on ${backend}: ${r.products} Hessian-vector products over ${r.batchSize} images.`,
        'done',
      );
    } else if (m.type === 'error' && m.job === 'analyze' && running) {
      finish(`Failed: ${m.message}`, 'error');
    }
  });

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (runButton.disabled) return;
    try {
      settings = readSettings(form);
    } catch (e) {
      finish((e as Error).message, 'error');
      return;
    }
    running = true;
    section.dataset.state = 'running';
    runButton.disabled = true;
    progress.value = 0;
    setStatus(status, 'Starting…');
    worker.post({
      type: 'analyze',
      model: readText(form, 'model') as TrainOptimizerName,
      settings,
    });
  });

  return {
    enable(trainedOn: string) {
      backend = trainedOn;
      runButton.disabled = false;
      if (!running)
        setStatus(status, `Ready: the models trained on ${trainedOn} are in the worker.`);
    },
  };
}
