/** The playground page: three panels; training and analysis go to one Web Worker. */
import type { FromWorker, ToWorker } from './protocol.js';
import { setupRacePanel } from './panels/race-panel.js';
import { setupTrainPanel } from './panels/train-panel.js';
import { setupHessianPanel } from './panels/hessian-panel.js';

export interface PlaygroundWorker {
  post(message: ToWorker): void;
  listen(handler: (message: FromWorker) => void): void;
}

function startWorker(): PlaygroundWorker {
  const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
  const handlers: ((m: FromWorker) => void)[] = [];
  worker.onmessage = (event: MessageEvent<FromWorker>) => handlers.forEach((h) => h(event.data));
  worker.onerror = (event) => {
    const message = `The worker failed: ${event.message || 'it could not be loaded'}.`;
    handlers.forEach((h) => h({ type: 'error', job: 'train', message }));
    handlers.forEach((h) => h({ type: 'error', job: 'analyze', message }));
  };
  return { post: (m) => worker.postMessage(m), listen: (h) => handlers.push(h) };
}

window.playground ??= { results: {} };
setupRacePanel();
const worker = startWorker();
const hessian = setupHessianPanel(worker);
setupTrainPanel(worker, (backend) => hessian.enable(backend));
document.body.dataset.ready = 'true';
