/**
 * The test page's script, bundled by esbuild (test/browser/page.ts). It exposes `window.harness`,
 * whose functions the *.browser.ts tests call through Playwright, and sets `window.harnessReady`.
 *
 * Nothing here installs adahessian at load time (no import of src/index.ts): `stockFirstOrder`
 * needs TensorFlow.js as it was before installing. `install()` or any product installs it.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
// Registers 'webgpu' where navigator.gpu exists, as a user's page would.
import '@tensorflow/tfjs-backend-webgpu';
import { useBackend, availableBackends } from '../../../src/backends.js';
import { installSecondOrderSupport } from '../../../src/autodiff/install.js';
import {
  allowUnverifiedBackend,
  gradAndHvp,
  UnverifiedBackendError,
} from '../../../src/autodiff/hvp.js';
import { checkSecondOrder } from '../../../src/autodiff/check.js';
import { nnCases } from '../../../src/autodiff/cases/nn.js';
import { allSecondOrderCases } from '../../../src/autodiff/cases/index.js';
import { AdaHessian } from '../../../src/optimizers/adahessian.js';
import { buildMlp } from '../../../src/models/mlp.js';
import { buildSmallCnn } from '../../../src/models/small-cnn.js';
import { softmaxCrossEntropy } from '../../../src/losses.js';
import { firstOrderCases, type FirstOrderResult } from './first-order-cases.js';

// The .wasm files sit beside the page (test/browser/page.ts copies them there).
setWasmPaths(new URL('./', location.href).href);

export interface CaseOutcome {
  name: string;
  relError: number;
  pass: boolean;
  /** Wall time of the case in the page, shader compilation included. */
  ms: number;
  error?: string;
}

function message(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** Gradient of every first-order case: stock before install(), ours after. */
function firstOrder(): FirstOrderResult {
  const out: FirstOrderResult = {};
  for (const c of [
    ...firstOrderCases(),
    ...nnCases.map((n) => ({ name: n.name, run: nnRun(n) })),
  ]) {
    try {
      out[c.name] = c.run();
    } catch (e) {
      out[c.name] = { error: message(e) };
    }
  }
  return out;
}

function nnRun(c: (typeof nnCases)[number]): () => number[][] {
  return () => {
    const p = c.build();
    try {
      const { value, grads } = tf.variableGrads(p.lossFn, p.vars);
      const out = p.vars.map((v) => Array.from(grads[v.name]!.dataSync()));
      tf.dispose([value, ...Object.values(grads)]);
      return out;
    } finally {
      p.dispose();
    }
  };
}

/**
 * Dilated convs, fused (conv + bias + relu: tf.layers runs tf.fused.conv2d) and unfused (no bias,
 * linear), batch normalization after each, as the issue asks to train on every backend.
 */
function batchNormDilatedCnn(inputShape: [number, number, number]): tf.Sequential {
  const init = (seed: number) => tf.initializers.glorotNormal({ seed });
  return tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape,
        filters: 4,
        kernelSize: 3,
        dilationRate: 2,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: init(1),
      }),
      tf.layers.batchNormalization(),
      tf.layers.conv2d({
        filters: 4,
        kernelSize: 3,
        dilationRate: 2,
        padding: 'same',
        useBias: false,
        kernelInitializer: init(2),
      }),
      tf.layers.batchNormalization(),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 4, kernelInitializer: init(3) }),
    ],
  });
}

export type Harness = typeof harness;

const harness = {
  tfVersion: tf.version_core,
  availableBackends,
  async useBackend(name: string): Promise<string> {
    await useBackend(name);
    return tf.getBackend();
  },
  /** Opts in to products on `backend` (allowUnverifiedBackend) for the rest of the page. */
  allowUnverified(backend: string): void {
    allowUnverifiedBackend(backend);
  },
  /** What gradAndHvp says on the current backend without opting in: 'ok' or the refusal. */
  refusal(): string {
    const x = tf.variable(tf.scalar(0.5));
    const v = tf.scalar(1);
    try {
      const r = gradAndHvp(() => tf.square(x) as tf.Scalar, [x], [v]);
      tf.dispose([r.loss, ...r.grads, ...r.hvp]);
      return 'ok';
    } catch (e) {
      return e instanceof UnverifiedBackendError
        ? `UnverifiedBackendError: ${e.message}`
        : message(e);
    } finally {
      tf.dispose([x, v]);
    }
  },
  currentBackend(): string {
    return tf.getBackend();
  },
  install(): void {
    installSecondOrderSupport();
  },
  isInstalled(): boolean {
    return tf.getGradient('Conv2DBackpropFilter') != null;
  },
  numTensors(): number {
    return tf.memory().numTensors;
  },
  async adapterInfo(): Promise<string | null> {
    const gpu = (navigator as { gpu?: { requestAdapter(): Promise<any> } }).gpu;
    const adapter = await gpu?.requestAdapter();
    return adapter == null
      ? null
      : `${adapter.info?.vendor ?? '?'} ${adapter.info?.architecture ?? ''}`;
  },

  /** d²/dx² of x·eˣ at 0.5 (exactly 4.1218...) by gradAndHvp and by nested tf.grad. */
  xExpX(allowUnverifiedBackend = false): {
    loss: number;
    grad: number;
    hvp: number;
    nested: number;
  } {
    const x = tf.variable(tf.scalar(0.5));
    const v = tf.scalar(1);
    try {
      const f = (t: tf.Tensor) => tf.mul(t, tf.exp(t)) as tf.Scalar;
      const r = gradAndHvp(() => f(x), [x], [v], { allowUnverifiedBackend });
      const out = {
        loss: r.loss.dataSync()[0]!,
        grad: r.grads[0]!.dataSync()[0]!,
        hvp: r.hvp[0]!.dataSync()[0]!,
        nested: 0,
      };
      tf.dispose([r.loss, ...r.grads, ...r.hvp]);
      const nested = tf.grad(tf.grad(f))(tf.scalar(0.5));
      out.nested = nested.dataSync()[0]!;
      nested.dispose();
      return out;
    } finally {
      tf.dispose([x, v]);
    }
  },

  /** The coverage suite on the current backend; `filter` narrows it by name. */
  async coverage(names?: string[]): Promise<CaseOutcome[]> {
    const outcomes: CaseOutcome[] = [];
    let last = performance.now();
    await checkSecondOrder({
      ...(names == null ? {} : { filter: (c) => names.includes(c.name) }),
      onResult: ({ name, relError, pass, error }) => {
        const now = performance.now();
        outcomes.push({
          name,
          relError,
          pass,
          ms: Math.round(now - last),
          ...(error != null ? { error } : {}),
        });
        last = now;
      },
    });
    return outcomes;
  },
  cases(): { name: string; group: string }[] {
    return allSecondOrderCases().map(({ name, group }) => ({ name, group }));
  },

  firstOrder,

  /**
   * Trains `model` ('mlp' or 'small-cnn') with AdaHessian through model.fit on seeded random
   * 12x12 images for `epochs` epochs of `batches` batches of 16; returns the loss per epoch and
   * the time per step of the last epoch (the first compiles the shaders).
   */
  async train(
    model: 'mlp' | 'small-cnn' | 'bn-dilated',
    epochs: number,
    batches: number,
    optimizer: 'adahessian' | 'adam' = 'adahessian',
  ): Promise<{ losses: number[]; msPerStep: number; leaked: number }> {
    const before = tf.memory().numTensors;
    const batchSize = 16;
    const n = batchSize * batches;
    const inputShape: [number, number, number] = [12, 12, 1];
    const net =
      model === 'mlp'
        ? buildMlp({ inputShape, hidden: 32, classes: 4, seed: 1 })
        : model === 'small-cnn'
          ? buildSmallCnn({ inputShape, classes: 4, seed: 1 })
          : batchNormDilatedCnn(inputShape);
    const xs = tf.randomUniform([n, ...inputShape], 0, 1, 'float32', 2);
    // Labels that depend on the images, so the loss can fall: the brightest quadrant.
    const ys = tf.tidy(() => {
      const q = tf.stack(
        [
          tf.mean(xs.slice([0, 0, 0, 0], [n, 6, 6, 1]), [1, 2, 3]),
          tf.mean(xs.slice([0, 0, 6, 0], [n, 6, 6, 1]), [1, 2, 3]),
          tf.mean(xs.slice([0, 6, 0, 0], [n, 6, 6, 1]), [1, 2, 3]),
          tf.mean(xs.slice([0, 6, 6, 0], [n, 6, 6, 1]), [1, 2, 3]),
        ],
        1,
      );
      return tf.oneHot(tf.argMax(q, 1), 4);
    });
    net.compile({
      optimizer:
        optimizer === 'adam'
          ? tf.train.adam(0.01)
          : new AdaHessian({ learningRate: 0.05, seed: 3 }),
      loss: softmaxCrossEntropy,
    });
    const losses: number[] = [];
    let msPerStep = NaN;
    for (let e = 0; e < epochs; e++) {
      const t0 = performance.now();
      const h = await net.fit(xs, ys, { epochs: 1, batchSize, shuffle: false, verbose: 0 });
      msPerStep = (performance.now() - t0) / batches;
      losses.push(h.history.loss![0] as number);
    }
    net.optimizer.dispose();
    net.dispose();
    tf.dispose([xs, ys]);
    return { losses, msPerStep, leaked: tf.memory().numTensors - before };
  },
};

declare global {
  interface Window {
    harness: typeof harness;
    harnessReady?: boolean;
    harnessError?: string;
  }
}

window.harness = harness;
window.harnessReady = true;
