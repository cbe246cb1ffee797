/**
 * What reusing a step's arrays buys (src/native/recycled-arrays.ts), in one process: the
 * demo's small CNN, data, optimizer and default path (as bench/speed/demo-ratio.ts), one batch
 * of 64, replayed steps in blocks of `--block`, alternately with new arrays (recycling off) and
 * with recycled ones, `--rounds` blocks of each (3 steps after each switch are not timed).
 * Prints the median per-step wall and process CPU time of the blocks. Taking turns in blocks
 * puts both under the same load; blocks, not single steps, because a Mark-Compact comes every
 * few steps and belongs to all of them. `--mode new` or `--mode recycled` runs only that one
 * (to count garbage collections with node's --trace-gc, one process each). `--mode bits`
 * trains the model afresh twice, new arrays then recycled ones, 4 + `--steps` steps each, and
 * prints a hash of all the weights' bits after each (they must be equal).
 *
 *   npx tsx bench/speed/recycled-arrays-ab.ts
 *   npx tsx bench/speed/recycled-arrays-ab.ts --optimizer adam --rounds 6 --block 20
 *   node --trace-gc --import tsx bench/speed/recycled-arrays-ab.ts --mode new | grep -c Mark-Compact
 *   npx tsx bench/speed/recycled-arrays-ab.ts --optimizer adam --mode bits --steps 100
 */
import { createHash } from 'node:crypto';
import { loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { prepareBackend } from '../../src/cli/backend.js';
import { loadDataset } from '../../src/cli/datasets.js';
import {
  buildModel,
  buildOptimizer,
  resolveTrainConfig,
  type TrainSettings,
} from '../../src/cli/train-config.js';
import { trainStep } from '../../src/cli/training.js';
import { DEMO_DEFAULTS } from '../../src/cli/commands/demo.js';
import { softmaxCrossEntropy } from '../../src/index.js';
import {
  disableRecycledArrays,
  enableRecycledArrays,
  recycledArraysStatus,
} from '../../src/native/recycled-arrays.js';
import { arg } from './args.js';

const optimizer = arg('optimizer', 'adahessian') as 'adahessian' | 'adam';
const rounds = Number(arg('rounds', '8'));
const block = Number(arg('block', '20'));
const mode = arg('mode', 'ab');
const kinds = mode === 'new' ? [0] : mode === 'recycled' ? [1] : [0, 1];

const path = await prepareBackend(undefined, undefined, undefined, undefined);
if (!path.native) throw new Error('needs the native path (onnxruntime-node)');
const settings: TrainSettings = {
  model: 'small-cnn',
  dataset: 'fashion-mnist-slice',
  epochs: DEMO_DEFAULTS.epochs,
  trainSize: DEMO_DEFAULTS.trainSize,
  testSize: DEMO_DEFAULTS.testSize,
  batchSize: DEMO_DEFAULTS.batchSize,
  seed: DEMO_DEFAULTS.seed,
  backend: path.backend,
};
const data = loadDataset(resolveTrainConfig(settings));
const x = data.train.x.slice(0, 64);
const y = data.train.y.slice(0, 64);
const lossFn = (labels: tf.Tensor, logits: tf.Tensor) => softmaxCrossEntropy(labels, logits);
const config = resolveTrainConfig({ ...settings, optimizer });

if (mode === 'bits') {
  const steps = Number(arg('steps', '100'));
  for (const recycle of [false, true]) {
    if (recycle) enableRecycledArrays();
    else disableRecycledArrays();
    const m = buildModel(config, data.modelOptions);
    const o = buildOptimizer(config);
    const vs = m.trainableWeights.map((w) => w.read() as tf.Variable);
    for (let i = 0; i < 4 + steps; i++) trainStep(m, o, vs, x, y, lossFn);
    const hash = createHash('sha256');
    for (const v of vs) hash.update(new Uint8Array((v.dataSync() as Float32Array).slice().buffer));
    const reusedNow = recycledArraysStatus()?.reused ?? 0;
    console.log(
      `${optimizer}, ${recycle ? 'recycled' : 'new arrays'}: weights after 4 + ${steps} steps ` +
        `${hash.digest('hex').slice(0, 16)} (arrays reused ${reusedNow})`,
    );
    o.dispose();
    m.dispose();
  }
  tf.dispose([x, y]);
  data.dispose();
  process.exit(0);
}

const model = buildModel(config, data.modelOptions);
const opt = buildOptimizer(config);
const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
const step = () => trainStep(model, opt, vars, x, y, lossFn);
for (let i = 0; i < 4; i++) step();

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const names = ['new arrays', 'recycled'] as const;
const res = names.map(() => ({ wall: [] as number[], cpu: [] as number[] }));
const loadBefore = loadavg()[0]!;
let reused = 0;
for (let r = 0; r < rounds; r++) {
  for (const k of r % 2 === 0 ? kinds : [...kinds].reverse()) {
    if (k === 0) disableRecycledArrays();
    else enableRecycledArrays();
    for (let i = 0; i < 3; i++) step();
    const c = cpuMs();
    const t = performance.now();
    for (let i = 0; i < block; i++) step();
    res[k]!.wall.push((performance.now() - t) / block);
    res[k]!.cpu.push((cpuMs() - c) / block);
    if (k === 1) reused += recycledArraysStatus()?.reused ?? 0;
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
console.log(
  `${optimizer}, ${path.backend}${path.native ? ` + native, step graphs ${path.stepGraphs}` : ''}; batch 64; ` +
    `${rounds} blocks of ${block} replayed steps each way; load ${loadBefore.toFixed(1)} -> ${loadavg()[0]!.toFixed(1)}`,
);
kinds.forEach((k) => {
  const r = res[k]!;
  console.log(
    `  ${names[k]!.padEnd(10)}  median ms per step: wall ${median(r.wall).toFixed(2)}, CPU ${median(r.cpu).toFixed(2)}`,
  );
});
const [off, on] = res;
if (kinds.length === 2)
  console.log(
    `  recycled / new: wall ${(median(on!.wall) / median(off!.wall)).toFixed(3)}, CPU ${(median(on!.cpu) / median(off!.cpu)).toFixed(3)}` +
      `; arrays reused per recycled step ${(reused / (rounds * (block + 3))).toFixed(1)}`,
  );
tf.dispose([x, y]);
data.dispose();
