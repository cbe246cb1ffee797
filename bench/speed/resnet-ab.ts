/**
 * A/B of the ResNet-20 changes of the sixth session, in one process, rounds interleaved: the
 * stock batch-norm training path (tf.moments + FusedBatchNorm and its gradient) against
 * batchNormTraining, and the former shortcut (1x1 average pool + tf.pad) against the 1x1 conv.
 * The variants swap the two layers' `call` on the same model, so weights and data are the same.
 * ResNet-20 on 28x28x1, batch 64, cpu + native kernels op by op (step graphs off), one thread
 * unless --threads.
 *
 *   npx tsx bench/speed/resnet-ab.ts --rounds 3 --optimizers adam,adahessian
 *   npx tsx bench/speed/resnet-ab.ts --variants before,bn,shortcut,after --optimizers adahessian
 */
import * as tf from '@tensorflow/tfjs';
import {
  adahessian,
  buildResNet20,
  softmaxCrossEntropy,
  useBackend,
  ZeroPadShortcut,
} from '../../src/index.js';
import { enableNativeKernels } from '../../src/native/index.js';
import { ResNetBatchNormalization } from '../../src/models/resnet-batch-norm.js';
import { arg } from './args.js';

tf.env().set('IS_TEST', false);

const rounds = Number(arg('rounds', '3'));
const optimizers = arg('optimizers', 'adam,adahessian').split(',');
const variants = arg('variants', 'before,after').split(',');
const threads = Number(arg('threads', '1'));

type Call = (this: tf.layers.Layer, inputs: tf.Tensor | tf.Tensor[], kwargs: object) => tf.Tensor;
const bnPrototype = ResNetBatchNormalization.prototype as unknown as { call: Call };
const newBatchNorm = bnPrototype.call;
const stockBatchNorm = (Object.getPrototypeOf(bnPrototype) as { call: Call }).call;
const shortcutPrototype = ZeroPadShortcut.prototype as unknown as { call: Call };
const newShortcut = shortcutPrototype.call;
/** The shortcut as it was before this session. */
const poolAndPad: Call = function (this: tf.layers.Layer, inputs) {
  const layer = this as unknown as ZeroPadShortcut;
  return tf.tidy(() => {
    const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
    const sub = layer.strides === 1 ? x : tf.avgPool(x, 1, layer.strides, 'valid');
    return tf.pad(sub, [
      [0, 0],
      [0, 0],
      [0, 0],
      [0, layer.filters - x.shape[3]],
    ]);
  });
};

function choose(variant: string): void {
  const bn = variant === 'bn' || variant === 'after';
  const shortcut = variant === 'shortcut' || variant === 'after';
  if (!['before', 'bn', 'shortcut', 'after'].includes(variant)) {
    throw new Error(`unknown variant '${variant}' (before, bn, shortcut, after)`);
  }
  bnPrototype.call = bn ? newBatchNorm : stockBatchNorm;
  shortcutPrototype.call = shortcut ? newShortcut : poolAndPad;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  await useBackend('cpu');
  // Op by op: this compares the layers' kernels, not the whole-step ONNX graphs.
  const status = enableNativeKernels({ threads, stepGraphs: false });
  if (!status.enabled) throw new Error(status.reason);
  const model = buildResNet20({ inputShape: [28, 28, 1], seed: 1 });
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const x = tf.randomNormal([64, 28, 28, 1], 0, 1, 'float32', 1);
  const y = tf.tidy(() => tf.oneHot(tf.randomUniform([64], 0, 10, 'int32', 2), 10).toFloat());
  const made = new Map(
    optimizers.map((name) => [
      name,
      name === 'adam' ? tf.train.adam(1e-3) : adahessian({ seed: 1 }),
    ]),
  );
  const step = (name: string): number => {
    const start = performance.now();
    const cost = made
      .get(name)!
      .minimize(
        () => softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor),
        true,
        vars,
      );
    cost?.dataSync();
    cost?.dispose();
    return performance.now() - start;
  };
  // Warm-up: every graph compiled and every output size pooled, per variant.
  for (const variant of variants) {
    choose(variant);
    for (const name of optimizers) step(name);
  }
  const times = new Map<string, number[]>();
  for (let r = 0; r < rounds; r++) {
    for (const name of optimizers) {
      for (const variant of variants) {
        choose(variant);
        const key = `${name} ${variant}`;
        times.set(key, [...(times.get(key) ?? []), step(name)]);
      }
    }
  }
  for (const name of optimizers) {
    const base = median(times.get(`${name} ${variants[0]}`)!);
    for (const variant of variants) {
      const all = times.get(`${name} ${variant}`)!;
      const m = median(all);
      console.log(
        `${name.padEnd(11)} ${variant.padEnd(9)} median ${m.toFixed(0).padStart(6)} ms ` +
          `(${all.map((t) => t.toFixed(0)).join(', ')})  / ${variants[0]} ${(m / base).toFixed(2)}`,
      );
    }
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
