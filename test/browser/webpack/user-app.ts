// What a user's page does: import the package, pick a backend, train.
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { AdaHessian, availableBackends, useBackend } from '../../../src/index.js';

setWasmPaths('/wasm/');

export async function start(): Promise<string> {
  const names = await availableBackends();
  await useBackend(names.includes('webgl') ? 'webgl' : 'wasm');
  return `${tf.getBackend()} ${new AdaHessian().getClassName()}`;
}
