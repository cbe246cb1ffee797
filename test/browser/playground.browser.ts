/**
 * The playground (web/) in headless Chromium: it builds with Vite and loads with no console
 * errors, fits a phone's width, and each panel runs a short seeded job whose numbers equal
 * those of the same job module (web/src/jobs/) run here under Node, on the same backend kind:
 * cpu for the race (the page steps it on its main thread), wasm for training and the Hessian
 * analysis (the same wasm binary on both sides; cpu would take minutes here).
 *
 * Set PLAYGROUND_SHOTS=DIR to keep a screenshot of each panel there.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { build } from 'vite';
import { openPage, type PageSession } from './chromium.js';
import { loadFashionMnistSlice } from '../../src/data/node/index.js';
import { runRace, type RaceResult, type RaceSettings } from '../../web/src/jobs/race.js';
import {
  disposeModels,
  trainModels,
  type TrainCurve,
  type TrainedModels,
  type TrainSettings,
} from '../../web/src/jobs/train.js';
import {
  analyzeModel,
  type HessianResult,
  type HessianSettings,
} from '../../web/src/jobs/hessian.js';

const TOLERANCE = 1e-3;
const JOB_TIMEOUT_MS = 4 * 60_000;
const webConfig = fileURLToPath(new URL('../../web/vite.config.ts', import.meta.url));

/** |a - b| <= 1e-3 max(1, |b|) entry by entry, through nested arrays and objects. */
function assertClose(actual: unknown, expected: unknown, path = 'result'): void {
  if (typeof expected === 'number') {
    assert.equal(typeof actual, 'number', `${path}: expected a number, got ${typeof actual}`);
    const a = actual as number;
    if (!Number.isFinite(expected)) {
      assert.equal(a, expected, path);
      return;
    }
    const allowed = TOLERANCE * Math.max(1, Math.abs(expected));
    assert.ok(Math.abs(a - expected) <= allowed, `${path}: page ${a}, Node ${expected}`);
    return;
  }
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${path}: expected an array`);
    assert.equal((actual as unknown[]).length, expected.length, `${path}: length`);
    expected.forEach((e, i) => assertClose((actual as unknown[])[i], e, `${path}[${i}]`));
    return;
  }
  if (expected !== null && typeof expected === 'object') {
    for (const [k, e] of Object.entries(expected)) {
      assertClose((actual as Record<string, unknown>)[k], e, `${path}.${k}`);
    }
    return;
  }
  assert.deepEqual(actual, expected, path);
}

/** The numbers of a training curve (wall-clock ms/step is not a number to compare). */
function curveNumbers(c: TrainCurve) {
  return {
    losses: c.losses,
    evalSteps: c.evalSteps,
    testLosses: c.testLosses,
    testAccuracies: c.testAccuracies,
  };
}

describe('playground (web/) in Chromium', () => {
  let outDir: string;
  let session: PageSession;
  let shots: string | null = null;
  let nodeModels: TrainedModels | null = null;

  const fill = async (form: string, values: Record<string, string | number>) => {
    for (const [name, value] of Object.entries(values)) {
      const selector = `#${form} [name="${name}"]`;
      if ((await session.page.locator(selector).evaluate((el) => el.tagName)) === 'SELECT') {
        await session.page.selectOption(selector, String(value));
      } else {
        await session.page.fill(selector, String(value));
      }
    }
  };
  const finished = async (panel: string) => {
    await session.page.waitForSelector(`#${panel}:is([data-state="done"], [data-state="error"])`, {
      timeout: JOB_TIMEOUT_MS,
    });
    const state = await session.page.getAttribute(`#${panel}`, 'data-state');
    const status = await session.page.textContent(`#${panel}-status`);
    assert.equal(state, 'done', `the ${panel} panel ended with: ${status}`);
  };
  const result = <T>(panel: string): Promise<T> =>
    session.page.evaluate(`window.playground.results[${JSON.stringify(panel)}]`) as Promise<T>;
  const shoot = async (panel: string) => {
    if (shots)
      await session.page.locator(`#${panel}`).screenshot({ path: join(shots, `${panel}.png`) });
  };

  before(async () => {
    outDir = mkdtempSync(join(tmpdir(), 'adahessian-web-'));
    await build({ configFile: webConfig, logLevel: 'error', build: { outDir, emptyOutDir: true } });
    if (process.env.PLAYGROUND_SHOTS) {
      shots = process.env.PLAYGROUND_SHOTS;
      mkdirSync(shots, { recursive: true });
    }
    // GPU compositing on SwiftShader delivers a frame every few seconds on a busy machine, which
    // stalls screenshots; the jobs compared here run on cpu and wasm, which need no GPU.
    session = await openPage(outDir, { timeoutMs: JOB_TIMEOUT_MS, extraArgs: ['--disable-gpu'] });
    await session.page.setViewportSize({ width: 1280, height: 800 });
    await session.page.waitForSelector('body[data-ready="true"]');
  });
  after(async () => {
    if (nodeModels) disposeModels(nodeModels.models);
    await session?.close();
    if (outDir) rmSync(outDir, { recursive: true, force: true });
  });

  /** No horizontal scrolling at desktop and phone widths (charts and tables included). */
  const assertFits = async () => {
    for (const width of [1280, 390]) {
      await session.page.setViewportSize({ width, height: 800 });
      const scrollWidth = (await session.page.evaluate(
        'document.documentElement.scrollWidth',
      )) as number;
      assert.ok(scrollWidth <= width, `the page is ${scrollWidth} px wide in a ${width} px window`);
    }
    await session.page.setViewportSize({ width: 1280, height: 800 });
  };

  it('loads with no console errors and fits 1280 and 390 pixels wide', async () => {
    assert.deepEqual(session.consoleErrors, []);
    await assertFits();
  });

  it('names a bad setting in one line and starts nothing', async () => {
    await fill('race-form', { steps: -5 });
    await session.page.click('#race-run');
    assert.equal(await session.page.getAttribute('#race', 'data-state'), 'error');
    assert.equal(
      await session.page.textContent('#race-status'),
      'steps must be an integer from 1 to 5000, got -5.',
    );
    assert.equal(await result('race'), undefined);
  });

  it('race: the first run button, pressed from the keyboard, runs the race the Node module runs', async () => {
    const settings: RaceSettings = {
      fn: 'rosenbrock',
      steps: 40,
      learningRates: { sgd: 0.001, momentum: 0.001, adam: 0.3, adamw: 0.3, adahessian: 1 },
      beta1: 0.9,
      beta2: 0.999,
      hessianPower: 0.8,
      hessianEvery: 2,
      probes: 2,
      seed: 7,
      diagonalProbes: 8,
    };
    await fill('race-form', {
      fn: settings.fn,
      steps: settings.steps,
      ...Object.fromEntries(Object.entries(settings.learningRates).map(([k, v]) => [`lr-${k}`, v])),
      beta1: settings.beta1,
      beta2: settings.beta2,
      hessianPower: settings.hessianPower,
      hessianEvery: settings.hessianEvery,
      probes: settings.probes,
      seed: settings.seed,
      diagonalProbes: settings.diagonalProbes!,
    });
    const firstRunButton = await session.page.$eval('button[type="submit"]', (b) => b.id);
    assert.equal(firstRunButton, 'race-run');
    await session.page.focus('#race-run');
    await session.page.keyboard.press('Enter');
    await finished('race');
    const page = await result<{ settings: RaceSettings } & RaceResult>('race');
    assert.deepEqual(page.settings, settings);
    await tf.setBackend('cpu');
    const tensorsBefore = tf.memory().numTensors;
    const node = runRace(settings);
    assert.equal(tf.memory().numTensors, tensorsBefore, 'tensors leaked by the race');
    assertClose(page.trajectories, node.trajectories, 'trajectories');
    assertClose(page.diagonal, node.diagonal, 'diagonal');
    await shoot('race');
  });

  const trainSettings: TrainSettings = {
    trainSize: 32,
    testSize: 50,
    batchSize: 16,
    epochs: 1,
    evalEvery: 1,
    seed: 3,
    learningRates: { adam: 0.001, adahessian: 0.05 },
    hessianEvery: 1,
  };

  it('training: Adam and AdaHessian in the worker match the Node module on wasm', async () => {
    await fill('train-form', {
      backend: 'wasm',
      trainSize: trainSettings.trainSize,
      testSize: trainSettings.testSize,
      batchSize: trainSettings.batchSize,
      epochs: trainSettings.epochs,
      evalEvery: trainSettings.evalEvery,
      'lr-adam': trainSettings.learningRates.adam,
      'lr-adahessian': trainSettings.learningRates.adahessian,
      hessianEvery: trainSettings.hessianEvery,
      seed: trainSettings.seed,
    });
    await session.page.click('#train-run');
    await finished('train');
    const page = await result<{
      settings: TrainSettings;
      backend: string;
      curves: Record<string, TrainCurve>;
    }>('train');
    assert.deepEqual(page.settings, trainSettings);
    assert.equal(page.backend, 'wasm');
    await tf.setBackend('wasm');
    const data = { train: loadFashionMnistSlice('train'), test: loadFashionMnistSlice('test') };
    nodeModels = await trainModels(trainSettings, data);
    for (const name of ['adam', 'adahessian'] as const) {
      assert.equal(page.curves[name]!.losses.length, 2);
      assertClose(curveNumbers(page.curves[name]!), curveNumbers(nodeModels.curves[name]), name);
    }
    await shoot('train');
  });

  it('Hessian explorer: the analysis in the worker matches the Node module on wasm', async () => {
    assert.ok(nodeModels, 'the training test must run first');
    const settings: HessianSettings = {
      batchSize: 16,
      topN: 2,
      lanczosIterations: 4,
      traceProbes: 4,
      densityIterations: 4,
      landscapeSteps: 3,
      landscapeRadius: 0.5,
      seed: 5,
    };
    await fill('hessian-form', { model: 'adahessian', ...settings });
    await session.page.click('#hessian-run');
    await finished('hessian');
    const page = await result<{ settings: HessianSettings; result: HessianResult }>('hessian');
    assert.deepEqual(page.settings, settings);
    const tensorsBefore = tf.memory().numTensors;
    const node = await analyzeModel(
      nodeModels.models.adahessian,
      loadFashionMnistSlice('train', { limit: settings.batchSize }),
      settings,
    );
    assert.equal(tf.memory().numTensors, tensorsBefore, 'tensors leaked by the analysis');
    assertClose(page.result, node, 'analysis');
    assert.equal(
      await session.page.locator('#hessian-progress').getAttribute('value'),
      '6',
      'the progress bar ends full',
    );
    await shoot('hessian');
    await assertFits();
    assert.deepEqual(session.consoleErrors, []);
  });

  it('training: the stop button stops the worker after the current step', async () => {
    await fill('train-form', { trainSize: 800, batchSize: 16, epochs: 1, evalEvery: 100 });
    await session.page.click('#train-run');
    await session.page.waitForFunction(
      "/^Step [1-9]/.test(document.getElementById('train-status').textContent)",
    );
    await session.page.click('#train-stop');
    await session.page.waitForSelector('#train:not([data-state="running"])');
    assert.equal(await session.page.getAttribute('#train', 'data-state'), 'stopped');
    const page = await result<{ stopped: boolean; curves: Record<string, TrainCurve> }>('train');
    assert.equal(page.stopped, true);
    const steps = page.curves.adam!.losses.length;
    assert.ok(steps >= 1 && steps < 50, `${steps} of 50 steps ran`);
    assert.equal(page.curves.adahessian!.losses.length, steps);
    assert.deepEqual(session.consoleErrors, []);
  });
});
