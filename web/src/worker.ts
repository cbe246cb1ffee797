/**
 * The page's Web Worker: trains the two small CNNs and analyses them, so the page stays
 * responsive. The trained models live here between the training and the analysis.
 */
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from './backend.js';
import { loadFashionMnistSlice } from './data.js';
import { analyzeModel } from './jobs/hessian.js';
import { disposeModels, trainModels, type TrainOptimizerName } from './jobs/train.js';
import type { FromWorker, ToWorker } from './protocol.js';
import type { ImageDataset } from '../../src/index.js';

let data: Promise<{ train: ImageDataset; test: ImageDataset }> | null = null;
let models: Record<TrainOptimizerName, tf.LayersModel> | null = null;
let stopRequested = false;
let busy = false;

function post(message: FromWorker): void {
  self.postMessage(message);
}

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e);
}

/** Lets the stop message in between steps. */
const yieldToMessages = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

async function train(backend: string, settings: Extract<ToWorker, { type: 'train' }>['settings']) {
  post({ type: 'status', job: 'train', text: 'Loading the Fashion-MNIST slice…' });
  data ??= loadFashionMnistSlice();
  const loaded = await data;
  post({ type: 'status', job: 'train', text: `Starting the ${backend} backend…` });
  if (models) disposeModels(models);
  models = null;
  await selectBackend(backend);
  stopRequested = false;
  const result = await trainModels(settings, loaded, {
    shouldStop: () => stopRequested,
    onProgress: async (progress) => {
      post({ type: 'progress', progress });
      await yieldToMessages();
    },
  });
  models = result.models;
  post({
    type: 'trained',
    progress: { step: result.steps, totalSteps: result.steps, curves: result.curves },
    stopped: result.stopped,
    backend: tf.getBackend(),
  });
}

async function analyze(
  which: TrainOptimizerName,
  settings: Extract<ToWorker, { type: 'analyze' }>['settings'],
) {
  if (models == null || data == null)
    throw new Error('Train the models first: there is nothing to analyse yet.');
  const loaded = await data;
  const result = await analyzeModel(models[which], loaded.train, settings, async (stage, index) => {
    post({ type: 'stage', stage, index });
    await yieldToMessages();
  });
  post({ type: 'analysis', model: which, result });
}

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.type === 'stop') {
    stopRequested = true;
    return;
  }
  const job = message.type;
  if (busy) {
    post({ type: 'error', job, message: 'A job is already running; wait for it or stop it.' });
    return;
  }
  busy = true;
  try {
    if (message.type === 'train') await train(message.backend, message.settings);
    else await analyze(message.model, message.settings);
  } catch (e) {
    post({ type: 'error', job, message: describe(e) });
  } finally {
    busy = false;
  }
};
