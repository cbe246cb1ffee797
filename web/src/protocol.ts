/** Messages between the page and its worker (structured-clone friendly, plain data only). */
import type { HessianResult, HessianSettings, HessianStage } from './jobs/hessian.js';
import type { TrainOptimizerName, TrainProgress, TrainSettings } from './jobs/train.js';

export type ToWorker =
  | { type: 'train'; backend: string; settings: TrainSettings }
  | { type: 'stop' }
  | { type: 'analyze'; model: TrainOptimizerName; settings: HessianSettings };

export type FromWorker =
  | { type: 'status'; job: 'train' | 'analyze'; text: string }
  | { type: 'progress'; progress: TrainProgress }
  | { type: 'trained'; progress: TrainProgress; stopped: boolean; backend: string }
  | { type: 'stage'; stage: HessianStage | null; index: number }
  | { type: 'analysis'; model: TrainOptimizerName; result: HessianResult }
  | { type: 'error'; job: 'train' | 'analyze'; message: string };
