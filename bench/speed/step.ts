/**
 * Time per training step, side by side: the same MLP and small CNN (batch 128), char
 * transformer (buildCharTransformer's defaults, batch 64 sequences of 64) and ResNet-20 (on
 * 28x28x1, batch 64) trained with SGD, Adam and AdaHessian (Hessian every step and every 5th),
 * on each TF.js backend we have (cpu, wasm, and cpu with the native kernels of src/native), and
 * the PyTorch reference (bench/speed/torch_step.py, twins in torch_models.py, on Debian's
 * python3-torch) in the same run. Before timing, each model's parameter count is checked equal
 * to its twin's, and for the transformer and ResNet-20 the twin's loss with our initial weights
 * copied in is checked equal to ours on the same batch.
 *
 * How it times, because the machine is shared and its load drifts (docs/PERFORMANCE.md, tenth
 * session, engineer E):
 *   - Warm-up, untimed, on both sides: at least 3 steps (15 with f = 5, whose Hessian step
 *     comes every 5th: capture, confirm, first replay), and ours until the step graphs have
 *     replayed twice (capture, compile and confirm are the first two steps of a shape); then
 *     one more cycle timed to calibrate.
 *   - Rounds: every configuration once per round. Within a round, each side's steps come in
 *     --turns turns (default 4), ours and PyTorch's in ABBA order (ours, theirs, theirs, ours,
 *     ...), so both see the same load, neither always runs right after the other, and a load
 *     change within the round falls on both.
 *   - Steps per turn chosen per model, optimizer and side from the calibration, so that each
 *     side's turns in a round last at least --min-round-ms in all (default 1000; whole cycles
 *     of 5 steps with f = 5), in fewer turns (down to 2) where the slower side's step is long;
 *     --steps forces the steps per turn.
 *   - The ratio is the median over rounds of each round's ours/PyTorch, printed with its
 *     min-max over rounds, by wall time and by process CPU time; ms columns are medians over
 *     rounds. The load average is printed at the start, after each round and at the end.
 *
 * With several thread counts (--threads 1,2), the whole set of rounds runs once per count (the
 * native kernels are re-enabled with that many ONNX Runtime threads, and a PyTorch process
 * pinned to that many threads answers), and one table puts the counts side by side. Ratios
 * to PyTorch are from interleaved rounds within a count; across counts, load may differ.
 *
 *   npx tsx bench/speed/step.ts                       # all of it
 *   npx tsx bench/speed/step.ts --quick               # fewer rounds and steps
 *   npx tsx bench/speed/step.ts --models cnn --variants cpu+native --rounds 5
 *   npx tsx bench/speed/step.ts --threads 2           # native and PyTorch on two threads (default 1)
 *   npx tsx bench/speed/step.ts --threads 1,auto      # and on the library's default count ('auto')
 *   npx tsx bench/speed/step.ts --models transformer,resnet20 --variants cpu+native --threads 1,2 --rounds 3
 *   ADAHESSIAN_FUSED_UPDATE=0 npx tsx bench/speed/step.ts ...  # native kernels without the fused optimizer updates
 *   ADAHESSIAN_STEP_GRAPHS=0 npx tsx bench/speed/step.ts ...   # everything op by op (no step graphs)
 *   ADAHESSIAN_STEP_GRAPH_ARENA=0 npx tsx bench/speed/step.ts ... # step graphs without ONNX Runtime's arena
 *   ADAHESSIAN_STEP_GRAPHS=adahessian npx tsx bench/speed/step.ts ...  # step graphs for AdaHessian only
 *   npx tsx bench/speed/step.ts --profile cpu+native  # kernel time breakdown of one step
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import * as tf from '@tensorflow/tfjs';
import { useBackend, type BackendName } from '../../src/index.js';
import {
  disableNativeKernels,
  enableNativeKernels,
  nativeKernelStatus,
  stepGraphsStatus,
} from '../../src/native/index.js';
import { autoThreads } from '../../src/native/threads.js';

tf.env().set('IS_TEST', false); // quiet TF.js's "install tfjs-node" banner
import {
  batchFor,
  batchOf,
  buildModel,
  HEAVY,
  lossOf,
  MODELS,
  OPTIMIZERS,
  trainingStep,
  type ModelName,
  type OptimizerName,
} from './step-setups.js';

const VARIANTS = ['cpu', 'wasm', 'cpu+native'] as const;
type Variant = (typeof VARIANTS)[number];

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
function listArg<T extends string>(name: string, all: readonly T[]): T[] {
  const v = arg(name);
  if (v == null) return [...all];
  const picked = v.split(',') as T[];
  for (const p of picked) {
    if (!all.includes(p)) throw new Error(`--${name}: unknown '${p}'; expected ${all.join(', ')}`);
  }
  return picked;
}

const quick = process.argv.includes('--quick');
/** --threads 1,auto: 'auto' is the default's count here (src/native/threads.ts). */
const threadCounts = (arg('threads') ?? '1')
  .split(',')
  .map((t) => (t === 'auto' ? autoThreads() : Number(t)));
for (const t of threadCounts) {
  if (!Number.isInteger(t) || t < 1)
    throw new Error(`--threads: '${arg('threads')}' is not a list of positive integers`);
}
/** Native kernels: fused optimizer updates unless ADAHESSIAN_FUSED_UPDATE=0 (for A/B runs). */
const fusedOptimizerUpdate = process.env['ADAHESSIAN_FUSED_UPDATE'] !== '0';
/**
 * Steps as captured ONNX graphs (src/native/step-graph): all (the default, as enableNativeKernels'),
 * AdaHessian's only with ADAHESSIAN_STEP_GRAPHS=adahessian, none with 0.
 */
const stepGraphsEnv = process.env['ADAHESSIAN_STEP_GRAPHS'];
const stepGraphs =
  stepGraphsEnv === '0' ? false : stepGraphsEnv === 'adahessian' ? 'adahessian' : 'all';
const rounds = Number(arg('rounds') ?? (quick ? 3 : 5));
const models = listArg('models', MODELS);
const optimizers = listArg('optimizers', OPTIMIZERS);
const variants = listArg('variants', VARIANTS);
const withTorch = !process.argv.includes('--no-torch');
/** Each side's steps in a round last at least this long in all (unless --steps forces a count). */
const minRoundMs = Number(arg('min-round-ms') ?? (quick ? 500 : 1000));
if (!(minRoundMs > 0)) throw new Error(`--min-round-ms: '${arg('min-round-ms')}' is not positive`);
/** Turns per side per round, ours and PyTorch's alternating (ABBA). */
const turns = Number(arg('turns') ?? (quick ? 2 : 4));
if (!(Number.isInteger(turns) && turns >= 1)) {
  throw new Error(`--turns: '${arg('turns')}' is not a positive integer`);
}
const forcedSteps = arg('steps') == null ? undefined : Number(arg('steps'));
if (forcedSteps !== undefined && !(Number.isInteger(forcedSteps) && forcedSteps >= 1)) {
  throw new Error(`--steps: '${arg('steps')}' is not a positive integer`);
}
/** f = 5 repeats every 5 steps: warm-up, calibration and rounds cover whole cycles. */
const cycleOf = (opt: OptimizerName) => (opt === 'adahessian-f5' ? 5 : 1);
/** Untimed warm-up steps at least (more for ours until the step graphs replay). */
const minWarmUp = (opt: OptimizerName) => (opt === 'adahessian-f5' ? 15 : 3);
/** Steps timed once after the warm-up to choose the steps per round. */
const calibrationSteps = (opt: OptimizerName) => Math.max(2, cycleOf(opt));

/** How a configuration's rounds are cut: turns per side, and each side's steps per turn. */
interface Plan {
  turns: number;
  ours: number;
  theirs: number;
}

/**
 * The plan for sides whose calibrated steps took `oursMs` and `theirsMs` (NaN without
 * PyTorch): each side's steps in a round last at least minRoundMs, in --turns turns, fewer
 * (down to 2) where the slower side's step is so long that a turn of one step would already
 * overshoot; whole cycles with f = 5. --steps forces the steps per turn.
 */
function planFor(opt: OptimizerName, oursMs: number, theirsMs: number): Plan {
  const slower = Math.max(oursMs, Number.isNaN(theirsMs) ? 0 : theirsMs, 1e-3);
  const turnsHere =
    forcedSteps !== undefined
      ? turns
      : Math.max(Math.min(turns, 2), Math.min(turns, Math.floor(minRoundMs / slower)));
  const cycle = cycleOf(opt);
  const steps = (ms: number) => {
    if (forcedSteps !== undefined) return forcedSteps;
    const n = Math.ceil(minRoundMs / turnsHere / Math.max(ms, 1e-3));
    return Math.max(cycle, Math.ceil(n / cycle) * cycle);
  };
  return {
    turns: turnsHere,
    ours: steps(oursMs),
    theirs: Number.isNaN(theirsMs) ? 0 : steps(theirsMs),
  };
}

function backendOf(variant: Variant): BackendName {
  return variant === 'wasm' ? 'wasm' : 'cpu';
}

interface Setup {
  step: () => void;
  dispose: () => void;
  /** The native kernels' enable count this setup last warmed up under (see onVariant). */
  warmedUnder: number;
  /** Ms per step timed after the last warm-up (for the plan). */
  msPerStep: number;
  /** Untimed warm-up steps at the last warm-up (more than the minimum: graphs were late). */
  warmUpSteps: number;
}

function setUp(modelName: ModelName, optimizerName: OptimizerName): Setup {
  return {
    warmedUnder: -1,
    msPerStep: NaN,
    warmUpSteps: 0,
    ...trainingStep(modelName, optimizerName),
  };
}

/**
 * Warms `s` up, untimed (see the header): at least minWarmUp steps, and on the native kernels
 * with step graphs for this optimizer, until two steps have replayed a graph (at most 10 steps
 * more: a step that keeps running op by op is reported after the run). Then times
 * calibrationSteps steps for the plan.
 */
function warmUp(s: Setup, opt: OptimizerName, variant: Variant): void {
  const graphsExpected =
    variant === 'cpu+native' &&
    (stepGraphs === 'all' || (stepGraphs === 'adahessian' && opt.startsWith('adahessian')));
  const replays0 = stepGraphsStatus().replays;
  const replayed = () => stepGraphsStatus().replays - replays0 >= 2;
  let n = 0;
  while (n < minWarmUp(opt) || (graphsExpected && !replayed() && n < minWarmUp(opt) + 10)) {
    s.step();
    n++;
  }
  s.warmUpSteps = n;
  const k = calibrationSteps(opt);
  const t0 = performance.now();
  for (let i = 0; i < k; i++) s.step();
  s.msPerStep = (performance.now() - t0) / k;
}

/** Whether the native kernels are on now, with how many threads, enabled how many times. */
let nativeOn = false;
let nativeThreads = 0;
let nativeEnables = 0;

/**
 * Runs `body` with the variant's backend active and the native kernels on for +native, off
 * otherwise, on `threads` ONNX Runtime threads. The native kernels stay on between calls as
 * long as only +native runs at one thread count, as they would in a training run: disabling
 * frees the compiled graphs and the output pool, and re-enabling would put graph compilation
 * into the next timed steps. `body` gets the enable count, so that a setup that has not run
 * since the last (re)enable can warm up first.
 */
async function onVariant<T>(
  variant: Variant,
  threads: number,
  body: (enables: number) => T,
): Promise<{ value: T }> {
  await useBackend(backendOf(variant));
  const wantNative = variant === 'cpu+native';
  if (wantNative && (!nativeOn || nativeThreads !== threads)) {
    const status = enableNativeKernels({
      threads,
      fusedOptimizerUpdate,
      stepGraphs,
      // Unset: enableNativeKernels' default (src/native/malloc-tuning.ts).
      ...(process.env['ADAHESSIAN_STEP_GRAPH_ARENA'] == null
        ? {}
        : { stepGraphMemoryArena: process.env['ADAHESSIAN_STEP_GRAPH_ARENA'] !== '0' }),
      // Room for all four models' graphs at once (231 on one thread, within the default 256,
      // so this changes nothing there yet); --cache-size to compare.
      cacheSize: Number(arg('cache-size') ?? 4096),
    });
    if (!status.enabled) throw new Error(`native kernels unavailable: ${status.reason}`);
    nativeOn = true;
    nativeThreads = threads;
    nativeEnables++;
  } else if (!wantNative && nativeOn) {
    disableNativeKernels();
    nativeOn = false;
  }
  return { value: body(wantNative ? nativeEnables : 0) };
}

class TorchReference {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;
  constructor(readonly threads: number) {
    const script = new URL('./torch_step.py', import.meta.url).pathname;
    // torch.set_num_threads does not reach OpenBLAS's own pool (it would use every core for
    // the matmuls behind PyTorch's convolutions): pin it, and OpenMP, to the same count.
    const n = String(this.threads);
    this.child = spawn('/usr/bin/python3', ['-W', 'ignore', script], {
      stdio: 'pipe',
      env: { ...process.env, OPENBLAS_NUM_THREADS: n, OMP_NUM_THREADS: n, MKL_NUM_THREADS: n },
    });
    this.child.stderr.on('data', (d: Buffer) => process.stderr.write(`[torch] ${d.toString()}`));
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }
  async request(req: object): Promise<Record<string, unknown>> {
    this.child.stdin.write(`${JSON.stringify(req)}\n`);
    const { value, done } = await this.lines.next();
    if (done) throw new Error('the PyTorch reference exited');
    return JSON.parse(value as string) as Record<string, unknown>;
  }
  /**
   * Builds the twin's setup for (model, optimizer) if new, warms it up untimed, times
   * calibration steps, and returns their ms per step.
   */
  async prepare(modelName: ModelName, opt: OptimizerName): Promise<number> {
    const r = await this.request({
      prepare: true,
      model: modelName,
      optimizer: opt,
      batch: batchOf(modelName),
      warmup: minWarmUp(opt),
      calibrate: calibrationSteps(opt),
    });
    return r['ms'] as number;
  }
  close(): void {
    this.child.stdin.end();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Per-round ratios a[r] / b[r] (both timed in round r, side by side). */
const roundRatios = (a: number[] | undefined, b: number[] | undefined): number[] =>
  a == null || b == null ? [] : a.map((x, r) => x / b[r]!).filter((x) => Number.isFinite(x));

/** "0.92 [0.85-1.03]": the median of per-round ratios and their min-max. */
const ratioText = (ratios: number[]): string =>
  ratios.length === 0
    ? 'n/a'
    : `${median(ratios).toFixed(2)} [${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}]`;

async function profile(variant: Variant): Promise<void> {
  const threads = threadCounts[0]!;
  for (const modelName of models) {
    const s = (await onVariant(variant, threads, () => setUp(modelName, 'adahessian-f1'))).value;
    await onVariant(variant, threads, () => {
      for (let i = 0; i < 2; i++) s.step();
    });
    const info = (await onVariant(variant, threads, () => tf.profile(() => s.step()))).value;
    const byKernel = new Map<string, { ms: number; calls: number }>();
    let total = 0;
    for (const k of (await info).kernels) {
      const e = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
      e.ms += k.kernelTimeMs as number;
      e.calls++;
      total += k.kernelTimeMs as number;
      byKernel.set(k.name, e);
    }
    const t0 = performance.now();
    await onVariant(variant, threads, () => s.step());
    const wall = performance.now() - t0;
    console.log(
      `\n${modelName} AdaHessian f=1 on ${variant}: ${(await info).kernels.length} kernel calls, ` +
        `kernel time ${total.toFixed(1)} ms, unprofiled step ${wall.toFixed(1)} ms`,
    );
    const rows = [...byKernel.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 18);
    for (const [name, e] of rows) {
      console.log(
        `  ${name.padEnd(30)} ${e.ms.toFixed(1).padStart(8)} ms  ${String(e.calls).padStart(5)} calls`,
      );
    }
    if (process.argv.includes('--calls')) {
      const calls = [...(await info).kernels].sort(
        (a, b) => (b.kernelTimeMs as number) - (a.kernelTimeMs as number),
      );
      for (const k of calls.slice(0, 25)) {
        console.log(
          `    ${(k.kernelTimeMs as number).toFixed(1).padStart(8)} ms ${k.name} in ${JSON.stringify(k.inputShapes)} out ${JSON.stringify(k.outputShapes)}`,
        );
      }
    }
    await onVariant(variant, threads, () => s.dispose());
  }
}

/**
 * Checks that each model's twin is the same model: equal trainable parameter counts, and for
 * the transformer and ResNet-20 (whose weights map one to one) the twin's loss with our seeded
 * initial weights copied in, on our batch, equal to ours to float32 accumulation error. Throws
 * if either differs. Runs on the cpu backend, before any timing.
 */
async function checkTwins(torch: TorchReference): Promise<void> {
  await useBackend('cpu');
  for (const modelName of models) {
    const model = buildModel(modelName);
    // Trainable only: batch norm's moving statistics are buffers in PyTorch.
    const ours = model.trainableWeights.reduce((n, w) => n + w.read().size, 0);
    const theirs = (await torch.request({ count: modelName }))['parameters'] as number;
    if (ours !== theirs) {
      throw new Error(`${modelName}: ${ours} parameters here, ${theirs} in the PyTorch twin`);
    }
    let lossLine = '';
    if (HEAVY.includes(modelName)) {
      const { x, labels, ids } = batchFor(modelName);
      const loss = tf.tidy(() => lossOf(model, x, labels).dataSync()[0]!);
      const weights = model.trainableWeights.map((w) => ({
        shape: w.shape,
        values: Array.from(w.read().dataSync()),
      }));
      const reply = await torch.request({
        check: modelName,
        weights,
        x: Array.from(x.dataSync()),
        xShape: x.shape,
        y: Array.from(ids.dataSync()),
      });
      tf.dispose([x, labels, ids]);
      const twin = reply['loss'] as number;
      // Sums of thousands of float32 terms in different orders: ~1e-6 relative apart (a
      // LayerNorm epsilon of 1e-5 instead of 1e-3 moves the loss by 7e-5).
      if (!(Math.abs(loss - twin) <= 1e-5 * Math.abs(loss))) {
        throw new Error(`${modelName}: initial loss ${loss} here, ${twin} in the PyTorch twin`);
      }
      lossLine = `; loss at our initial weights ${loss.toFixed(6)}, twin ${twin.toFixed(6)}`;
    }
    model.dispose();
    console.log(`${modelName}: ${ours} parameters here and in the twin${lossLine}`);
  }
}

const loadNow = async () =>
  (await import('node:os'))
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');

async function main(): Promise<void> {
  const profiled = arg('profile') as Variant | undefined;
  if (profiled != null) return profile(profiled);

  const torches = new Map<number, TorchReference>();
  if (withTorch) {
    for (const t of threadCounts) {
      const torch = new TorchReference(t);
      const r = await torch.request({ threads: t });
      const blas = (r['blas'] as string[]).join(', ');
      console.log(`PyTorch ${r['version']} on ${r['threads']} thread(s), BLAS ${blas}`);
      if (!/openblas/i.test(blas)) {
        console.log(
          '  reference BLAS: PyTorch matmuls ~10x slow; apt-get install libopenblas0-pthread',
        );
      }
      torches.set(t, torch);
    }
    await checkTwins(torches.get(threadCounts[0]!)!);
  }
  console.log(
    `native kernels: ${threadCounts.join(', ')} thread(s), fused optimizer updates ` +
      `${fusedOptimizerUpdate ? 'on' : 'off'}, step graphs ${stepGraphs || 'off'}; rounds ${rounds}; ` +
      `${turns} turns per side per round of ${forcedSteps !== undefined ? `${forcedSteps} steps` : `>= ${minRoundMs} ms in all`}; batch ${models
        .map((m) => `${m} ${batchOf(m)}`)
        .join(', ')}; load ${await loadNow()}`,
  );
  const setups = new Map<string, Setup>();
  /** Per round: ms per step over the round's turns (wall, and with 'cpu:' process CPU time). */
  const times = new Map<string, number[]>();
  const record = (key: string, ms: number) => times.set(key, [...(times.get(key) ?? []), ms]);
  /** Steps per turn, turns and warm-up steps, per thread count and configuration, printed. */
  const stepsUsed = new Map<string, string>();
  /** PyTorch's calibrated ms per step, per thread count, model and optimizer. */
  const torchMs = new Map<string, number>();
  /** The plan of each thread count and configuration, made after both sides' warm-up. */
  const plans = new Map<string, Plan>();
  const loads: number[] = [];
  interface Turn {
    wall: number;
    cpu: number;
    /** Minor page faults (the process's, all threads). */
    faults: number;
    steps: number;
  }

  // One block of rounds per thread count: switching ONNX Runtime's thread count re-enables
  // the native kernels, and every setup would pay its warm-up again each round.
  for (const threads of threadCounts) {
    const torch = torches.get(threads);
    // Backends without threads of their own run at the first count only.
    const variantsNow = variants.filter((v) => v === 'cpu+native' || threads === threadCounts[0]);
    for (let round = 0; round < rounds; round++) {
      for (const modelName of models) {
        for (const opt of optimizers) {
          const torchKey = `${threads}|${modelName}|${opt}`;
          if (torch && !torchMs.has(torchKey)) {
            torchMs.set(torchKey, await torch.prepare(modelName, opt));
          }
          for (const variant of variantsNow) {
            const key = `${modelName}|${opt}|${variant}`;
            // New, or native kernels (re)enabled since this setup last ran: compile the graphs
            // and refill the output pool, untimed, and calibrate.
            const s = (
              await onVariant(variant, threads, (enables) => {
                let setup = setups.get(key);
                if (setup == null) {
                  setup = setUp(modelName, opt);
                  setups.set(key, setup);
                }
                if (setup.warmedUnder !== enables) {
                  warmUp(setup, opt, variant);
                  setup.warmedUnder = enables;
                }
                return setup;
              })
            ).value;
            const planKey = `${threads}|${key}`;
            if (!plans.has(planKey)) {
              const plan = planFor(opt, s.msPerStep, torchMs.get(torchKey) ?? NaN);
              plans.set(planKey, plan);
              const turnsText = `${plan.turns} turns per round`;
              stepsUsed.set(planKey, `${plan.ours} x ${turnsText} (warm-up ${s.warmUpSteps})`);
              if (torch) {
                const warm = minWarmUp(opt);
                stepsUsed.set(
                  `${torchKey}|torch~${variant}`,
                  `${plan.theirs} x ${turnsText} (warm-up ${warm})`,
                );
              }
            }
            const plan = plans.get(planKey)!;
            // One turn of ours.
            const ours = async (): Promise<Turn> =>
              (
                await onVariant(variant, threads, () => {
                  const f0 = process.resourceUsage().minorPageFault;
                  const c0 = process.cpuUsage();
                  const t0 = performance.now();
                  for (let i = 0; i < plan.ours; i++) s.step();
                  const wall = performance.now() - t0;
                  const c = process.cpuUsage(c0);
                  const faults = process.resourceUsage().minorPageFault - f0;
                  return { wall, cpu: (c.user + c.system) / 1000, faults, steps: plan.ours };
                })
              ).value;
            const theirs = async (): Promise<Turn> => {
              const steps = plan.theirs;
              const r = await torch!.request({
                model: modelName,
                optimizer: opt,
                batch: batchOf(modelName),
                steps,
              });
              return {
                wall: (r['ms'] as number) * steps,
                cpu: (r['cpu_ms'] as number) * steps,
                faults: (r['faults'] as number) * steps,
                steps,
              };
            };
            // Turns in ABBA order (ours, theirs, theirs, ours, ...): both sides see the same
            // load, and neither always runs right after the other.
            const sumOurs: Turn = { wall: 0, cpu: 0, faults: 0, steps: 0 };
            const sumTheirs: Turn = { wall: 0, cpu: 0, faults: 0, steps: 0 };
            const add = (to: Turn, t: Turn) => {
              to.wall += t.wall;
              to.cpu += t.cpu;
              to.faults += t.faults;
              to.steps += t.steps;
            };
            for (let i = 0; i < plan.turns; i++) {
              const oursFirst = i % 2 === 0;
              if (oursFirst) add(sumOurs, await ours());
              if (torch) add(sumTheirs, await theirs());
              if (!oursFirst) add(sumOurs, await ours());
            }
            record(`${threads}|${key}`, sumOurs.wall / sumOurs.steps);
            record(`cpu:${threads}|${key}`, sumOurs.cpu / sumOurs.steps);
            record(`faults:${threads}|${key}`, sumOurs.faults / sumOurs.steps);
            if (torch) {
              // PyTorch's turns beside this variant's: each variant's ratio uses its own, and
              // the torch column shows those beside the last variant.
              const last = variant === variantsNow[variantsNow.length - 1];
              for (const suffix of [`torch~${variant}`, ...(last ? ['torch'] : [])]) {
                record(`${torchKey}|${suffix}`, sumTheirs.wall / sumTheirs.steps);
                record(`cpu:${torchKey}|${suffix}`, sumTheirs.cpu / sumTheirs.steps);
                record(`faults:${torchKey}|${suffix}`, sumTheirs.faults / sumTheirs.steps);
              }
            }
          }
        }
      }
      const load = await loadNow();
      loads.push(Number(load.split(' ')[0]));
      process.stderr.write(
        `threads ${threads}: round ${round + 1}/${rounds} done (load ${load})\n`,
      );
    }
  }
  for (const torch of torches.values()) torch.close();
  for (const s of setups.values()) s.dispose();

  const withTorchColumn = torches.size > 0;
  const med = (key: string) => (times.has(key) ? median(times.get(key)!) : NaN);
  for (const threads of threadCounts) {
    const variantsNow = variants.filter((v) => v === 'cpu+native' || threads === threadCounts[0]);
    const columns = [...variantsNow, ...(withTorchColumn ? ['torch'] : [])];
    const header = [
      'model',
      'optimizer',
      ...columns,
      ...(withTorchColumn ? variantsNow.map((v) => `${v}/torch`) : []),
    ].join(' | ');
    const table = (prefix: string) => {
      console.log(header);
      for (const modelName of models) {
        for (const opt of optimizers) {
          const k = (c: string) => `${prefix}${threads}|${modelName}|${opt}|${c}`;
          const cells = columns.map((c) => med(k(c)).toFixed(1));
          const ratios = withTorchColumn
            ? variantsNow.map((v) =>
                ratioText(roundRatios(times.get(k(v)), times.get(k(`torch~${v}`)))),
              )
            : [];
          console.log([modelName, opt, ...cells, ...ratios].join(' | '));
        }
      }
    };
    console.log(
      `\n${threads} thread(s): ms per step (median of ${rounds} interleaved rounds); ratios: ` +
        `median of the rounds' ours/torch [min-max]`,
    );
    table('');
    console.log(
      `\n${threads} thread(s): process CPU time per step, ms (median; includes V8's background` +
        ` GC threads; with one thread per side, the fairer comparison on a loaded machine);` +
        ` ratios as above`,
    );
    table('cpu:');
    console.log(`\n${threads} thread(s): AdaHessian / Adam per backend`);
    for (const modelName of models) {
      for (const c of columns) {
        const k = (opt: string) => med(`${threads}|${modelName}|${opt}|${c}`);
        console.log(
          `${modelName} ${c}: f=1 ${(k('adahessian-f1') / k('adam')).toFixed(2)}, ` +
            `f=5 ${(k('adahessian-f5') / k('adam')).toFixed(2)}`,
        );
      }
    }
  }
  if (threadCounts.length > 1 && variants.includes('cpu+native')) {
    console.log(`\nThreads side by side: cpu+native and PyTorch, ms per step (median), and ratios`);
    console.log(
      [
        'model',
        'optimizer',
        ...threadCounts.flatMap((t) => [`ours ${t}t`, `torch ${t}t`, `ours/torch ${t}t`]),
      ].join(' | '),
    );
    for (const modelName of models) {
      for (const opt of optimizers) {
        const cells = threadCounts.flatMap((t) => {
          const ours = `${t}|${modelName}|${opt}|cpu+native`;
          const theirs = `${t}|${modelName}|${opt}|torch~cpu+native`;
          const ratios = roundRatios(times.get(ours), times.get(theirs));
          return [med(ours).toFixed(1), med(theirs).toFixed(1), ratioText(ratios)];
        });
        console.log([modelName, opt, ...cells].join(' | '));
      }
    }
  }
  if (withTorchColumn) {
    console.log(`\nPer-round ratios to PyTorch (round 1 first), wall | CPU`);
    for (const threads of threadCounts) {
      const variantsNow = variants.filter((v) => v === 'cpu+native' || threads === threadCounts[0]);
      for (const modelName of models) {
        for (const opt of optimizers) {
          for (const v of variantsNow) {
            const k = (prefix: string, c: string) => `${prefix}${threads}|${modelName}|${opt}|${c}`;
            const list = (prefix: string) =>
              roundRatios(times.get(k(prefix, v)), times.get(k(prefix, `torch~${v}`)))
                .map((r) => r.toFixed(2))
                .join(' ');
            console.log(`${threads}t ${modelName} ${opt} ${v}: ${list('')} | ${list('cpu:')}`);
          }
        }
      }
    }
  }
  console.log(`\nSteps per turn x turns per side per round (untimed warm-up steps before them)`);
  for (const [key, text] of stepsUsed) {
    // Page faults per step (median over rounds): a step that faults its memory in again pays
    // more under load.
    const faults = med(`faults:${key}`);
    console.log(
      `${key.replaceAll('|', ' ')}: ${text}, ${faults.toFixed(0)} minor page faults per step`,
    );
  }
  console.log(
    `\nload (1 min) after each round: ${loads.map((l) => l.toFixed(1)).join(' ')}; ` +
      `after the run: ${await loadNow()}`,
  );
  const cores = (await import('node:os')).cpus().length;
  if (Math.max(...loads) > cores) {
    // Shared cores slow the two sides unequally, by CPU time too (the transformer's AdaHessian
    // ratio 0.67-0.95 at load 7-10 against ~0.92 quiet: docs/PERFORMANCE.md, tenth session,
    // engineer E), and interleaving cannot undo that.
    console.log(
      `load above the ${cores} cores: both sides were slowed by other work, not alike (compare ` +
        `ms with CPU ms); a quiet run's ratios are the reference`,
    );
  }
  if (variants.includes('cpu+native')) {
    const s = nativeKernelStatus();
    console.log(
      `\nnative status after the run: ${JSON.stringify({
        enabled: s.enabled,
        reason: s.reason,
        cachedGraphs: s.cachedGraphs,
        compiledGraphs: s.compiledGraphs,
      })}`,
    );
    // Whether the timed steps replayed graphs or ran op by op (a refused step says why).
    const g = stepGraphsStatus();
    const { replays, opByOp, compiled, lastReason } = g;
    console.log(`step graphs: ${JSON.stringify({ replays, opByOp, compiled, lastReason })}`);
  }
}

await main();
