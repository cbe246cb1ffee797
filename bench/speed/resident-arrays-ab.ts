/**
 * What AdaHessian's resident arrays buy (recycled-arrays.ts's takeResidentArray: the SIMD
 * update's w, m, v live in its WebAssembly memory and are read and written in place), in one
 * process: two AdaHessian models on the demo's small CNN, data and default path (as
 * bench/speed/demo-ratio.ts, one thread unless --threads), one batch of 64, replayed steps
 * taking turns, one with resident arrays off (its update copies every operand in and the new
 * values out, as before) and one with them on. Prints the median and mean wall time of the
 * fused update (all variables) and of the whole step, and the step's process CPU time.
 * `--mode bits` trains afresh twice, off then on, 4 + `--steps` steps each on eight batches,
 * with a foreign read (dataSync) of a weight halfway, and prints a hash of all the weights'
 * and the optimizer state's bits after each (they must be equal).
 *
 *   npx tsx bench/speed/resident-arrays-ab.ts --rounds 200
 *   npx tsx bench/speed/resident-arrays-ab.ts --mode bits --steps 60
 */
import { createHash } from 'node:crypto';
import { loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { prepareBackend } from '../../src/cli/backend.js';
import { loadDataset } from '../../src/cli/datasets.js';
import { buildModel, buildOptimizer, resolveTrainConfig } from '../../src/cli/train-config.js';
import { trainStep } from '../../src/cli/training.js';
import { DEMO_DEFAULTS, demoTrainSettings } from '../../src/cli/commands/demo.js';
import { softmaxCrossEntropy } from '../../src/index.js';
import { cpuAdaHessianUpdate } from '../../src/native/adahessian-update.js';
import { setResidentArrays } from '../../src/native/recycled-arrays.js';
import { arg } from './args.js';

const mode = arg('mode', 'time');
const rounds = Number(arg('rounds', '200'));
const steps = Number(arg('steps', '60'));
const threads = Number(arg('threads', '1'));

const path = await prepareBackend(undefined, undefined, undefined, undefined, threads);
const settings = demoTrainSettings({ ...DEMO_DEFAULTS, backend: path.backend });
const data = loadDataset(resolveTrainConfig(settings));
const batches = Array.from({ length: 8 }, (_, k) => ({
  x: data.train.x.slice(k * 64, 64),
  y: data.train.y.slice(k * 64, 64),
}));
const lossFn = (labels: tf.Tensor, logits: tf.Tensor) => softmaxCrossEntropy(labels, logits);

let updateMs = 0;
const update = cpuAdaHessianUpdate.update;
cpuAdaHessianUpdate.update = (input) => {
  const t = performance.now();
  try {
    return update(input);
  } finally {
    updateMs += performance.now() - t;
  }
};

function setUp(resident: boolean) {
  setResidentArrays(resident);
  const config = resolveTrainConfig({ ...settings, optimizer: 'adahessian' });
  const model = buildModel(config, data.modelOptions);
  const opt = buildOptimizer(config);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const step = (k: number) => {
    setResidentArrays(resident);
    trainStep(model, opt, vars, batches[k % 8]!.x, batches[k % 8]!.y, lossFn);
  };
  return { resident, model, opt, vars, step };
}

if (mode === 'bits') {
  for (const resident of [false, true]) {
    const run = setUp(resident);
    for (let k = 0; k < 4 + steps; k++) {
      run.step(k);
      if (k === 4 + (steps >> 1)) run.vars[0]!.dataSync();
    }
    const hash = createHash('sha256');
    for (const v of run.vars) hash.update(new Uint8Array(v.dataSync().slice().buffer));
    const state = await run.opt.getWeights();
    for (const w of state) hash.update(new Uint8Array(w.tensor.dataSync().slice().buffer));
    tf.dispose(state.map((w) => w.tensor));
    console.log(
      `resident ${resident ? 'on ' : 'off'}: weights and state after 4 + ${steps} steps ${hash.digest('hex').slice(0, 16)}`,
    );
    run.opt.dispose();
    run.model.dispose();
  }
} else {
  const sides = [false, true].map((resident) => {
    const run = setUp(resident);
    for (let k = 0; k < 4; k++) run.step(0);
    return { ...run, wall: [] as number[], cpu: [] as number[], update: [] as number[] };
  });
  const load = loadavg()[0]!;
  for (let r = 0; r < rounds; r++) {
    for (const side of r % 2 === 0 ? sides : [...sides].reverse()) {
      updateMs = 0;
      const c = process.cpuUsage();
      const t = performance.now();
      side.step(0);
      side.wall.push(performance.now() - t);
      const used = process.cpuUsage(c);
      side.cpu.push((used.user + used.system) / 1000);
      side.update.push(updateMs);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const f = (xs: number[]) => `${median(xs).toFixed(2)} (mean ${mean(xs).toFixed(2)})`;
  console.log(
    `${rounds} rounds, ${path.threads ?? 1} thread(s), load ${load.toFixed(1)} -> ${loadavg()[0]!.toFixed(1)}; ms per step, median (mean):`,
  );
  for (const s of sides) {
    console.log(
      `resident ${s.resident ? 'on ' : 'off'}: update ${f(s.update)}, step wall ${f(s.wall)}, step CPU ${f(s.cpu)}`,
    );
  }
  const [off, on] = sides;
  console.log(
    `on - off: update ${(median(on!.update) - median(off!.update)).toFixed(2)}, step wall ${(median(on!.wall) - median(off!.wall)).toFixed(2)}, step CPU ${(median(on!.cpu) - median(off!.cpu)).toFixed(2)} (means ${(mean(on!.update) - mean(off!.update)).toFixed(2)}, ${(mean(on!.wall) - mean(off!.wall)).toFixed(2)}, ${(mean(on!.cpu) - mean(off!.cpu)).toFixed(2)})`,
  );
}
for (const b of batches) tf.dispose([b.x, b.y]);
data.dispose();
