/**
 * One thread against the default ('auto', src/native/threads.ts) for ONNX Runtime, in one run:
 * wall and process CPU time per step of the demo's two optimizers (its small CNN, batch 64 of
 * Fashion-MNIST, training.ts's trainStep as the demo calls it) and of bench/speed/step.ts's
 * models (small CNN at batch 128, char transformer and ResNet-20 at batch 64; Adam and
 * AdaHessian f = 1), all on the CLI's default path (cpu + native kernels, step graphs all),
 * and one Hessian-vector product of `analyze`'s (op by op).
 *
 * A thread count is a process-wide setting (re-enabling the kernels drops every compiled graph),
 * so each side is its own worker process (this script with --worker n), and the parent has them
 * take turns: per round and configuration, A B B A turns of the same number of steps, so both
 * see the same load. Groups (the demo; each model) run one after the other; within a group
 * every configuration takes its turns in every round, so the AdaHessian/Adam ratios are from the
 * same rounds too. Printed: median ms per step over rounds (wall, CPU), the median and range of
 * the per-round ratios auto / 1 thread, and each side's AdaHessian/Adam. Process CPU counts ONNX
 * Runtime's threads, so it shows what a second thread costs the machine.
 *
 *   npx tsx bench/speed/threads.ts           # groups demo, cnn, transformer, resnet20, analysis
 *   npx tsx bench/speed/threads.ts --groups demo --rounds 20
 *   npx tsx bench/speed/threads.ts --a 1 --b 2 --groups demo,cnn --min-turn-ms 300
 *   npx tsx bench/speed/threads.ts --a 2 --b 2 --b-env ADAHESSIAN_ORT_SPINNING=1   # spinning
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { prepareBackend, threadsText } from '../../src/cli/backend.js';
import { DEMO_DEFAULTS, demoTrainSettings } from '../../src/cli/commands/demo.js';
import { loadDataset } from '../../src/cli/datasets.js';
import {
  buildModel as buildCliModel,
  buildOptimizer,
  resolveTrainConfig,
} from '../../src/cli/train-config.js';
import { trainStep } from '../../src/cli/training.js';
import {
  buildSmallCnn,
  datasetToTensors,
  HessianAnalyzer,
  softmaxCrossEntropy,
} from '../../src/index.js';
import { loadFashionMnistSlice } from '../../src/data/node/index.js';
import { stepGraphsStatus } from '../../src/native/index.js';
import { autoThreads, DEFAULT_THREADS, resolveThreads } from '../../src/native/threads.js';
import { arg } from './args.js';
import { trainingStep, type ModelName } from './step-setups.js';

tf.env().set('IS_TEST', false);

const GROUPS = ['demo', 'cnn', 'transformer', 'resnet20', 'analysis'] as const;
type Group = (typeof GROUPS)[number];
/**
 * Each group's configurations: the demo's optimizers; Adam and AdaHessian f = 1; for
 * 'analysis', one Hessian-vector product of `analyze`'s (HessianAnalyzer, op by op: no step
 * graphs there) on the small CNN at analyze's default batch, 128 slice images.
 */
const configsOf = (group: Group) =>
  group === 'demo'
    ? ['demo/adam', 'demo/adahessian']
    : group === 'analysis'
      ? ['analysis/hvp']
      : [`${group}/adam`, `${group}/adahessian-f1`];

/** A thread count argument: 'auto', 'default' (DEFAULT_THREADS) or a number. */
function threadsArg(name: string, fallback: string): number {
  const v = arg(name, fallback);
  const n =
    v === 'auto' ? autoThreads() : v === 'default' ? resolveThreads(DEFAULT_THREADS) : Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: '${v}' is not a thread count`);
  return n;
}

/** --a-env / --b-env KEY=V[,KEY=V]: environment variables for one side's worker. */
function envArg(name: string): Record<string, string> {
  const v = arg(name, '');
  if (v === '') return {};
  return Object.fromEntries(
    v.split(',').map((kv) => {
      const [k, x] = kv.split('=');
      if (!k || x === undefined) throw new Error(`--${name}: '${kv}' is not KEY=VALUE`);
      return [k, x];
    }),
  );
}
const envText = (env: Record<string, string>) =>
  Object.keys(env).length === 0
    ? ''
    : ` (${Object.entries(env)
        .map(([k, x]) => `${k}=${x}`)
        .join(' ')})`;

// ---------------------------------------------------------------- worker: one thread count
interface Prepared {
  step: () => void | Promise<void>;
  dispose: () => void;
}

async function worker(threads: number): Promise<void> {
  const path = await prepareBackend(undefined, undefined, undefined, undefined, threads);
  if (!path.native) throw new Error('the native kernels are not available');
  const prepared = new Map<string, Prepared>();
  let demoData: ReturnType<typeof loadDataset> | null = null;

  const prepare = (key: string): Prepared => {
    const [group, optimizer] = key.split('/') as [string, string];
    if (group === 'analysis') return hessianProduct();
    if (group !== 'demo') return trainingStep(group as ModelName, optimizer as 'adam');
    const settings = demoTrainSettings({ ...DEMO_DEFAULTS, backend: path.backend });
    demoData ??= loadDataset(resolveTrainConfig(settings));
    const x = demoData.train.x.slice(0, DEMO_DEFAULTS.batchSize);
    const y = demoData.train.y.slice(0, DEMO_DEFAULTS.batchSize);
    const config = resolveTrainConfig({ ...settings, optimizer: optimizer as 'adam' });
    const model = buildCliModel(config, demoData.modelOptions);
    const opt = buildOptimizer(config);
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const lossFn = (labels: tf.Tensor, logits: tf.Tensor) => softmaxCrossEntropy(labels, logits);
    return {
      step: () => void trainStep(model, opt, vars, x, y, lossFn),
      dispose: () => {
        opt.dispose();
        model.dispose();
        tf.dispose([x, y]);
      },
    };
  };
  const cpuMs = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const reply = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
  reply({ ready: threads });
  for await (const line of createInterface({ input: process.stdin })) {
    const req = JSON.parse(line) as { setup?: string; run?: string; steps?: number; end?: string };
    if (req.setup !== undefined) {
      const p = prepare(req.setup);
      prepared.set(req.setup, p);
      // Warm up past capture and confirmation: until two steps replayed (at most 15 steps).
      const replays0 = stepGraphsStatus().replays;
      let n = 0;
      while (n < 3 || (stepGraphsStatus().replays - replays0 < 2 && n < 15)) {
        await p.step();
        n++;
      }
      const t = performance.now();
      for (let i = 0; i < 2; i++) await p.step();
      const s = stepGraphsStatus();
      reply({
        ms: (performance.now() - t) / 2,
        warmUp: n,
        replayed: s.replays - replays0,
        lastReason: s.lastReason,
      });
    } else if (req.run !== undefined) {
      const p = prepared.get(req.run)!;
      const c = cpuMs();
      const t = performance.now();
      for (let i = 0; i < req.steps!; i++) await p.step();
      reply({ wall: performance.now() - t, cpu: cpuMs() - c });
    } else if (req.end !== undefined) {
      prepared.get(req.end)?.dispose();
      prepared.delete(req.end);
      reply({ ended: req.end });
    }
  }
}

/** One Hessian-vector product of analyze's operator on the small CNN, 128 slice images. */
function hessianProduct(): Prepared {
  const model = buildSmallCnn({ seed: 1 });
  const { x, y } = datasetToTensors(loadFashionMnistSlice('train', { limit: 128 }));
  const analyzer = new HessianAnalyzer({ model, loss: softmaxCrossEntropy, data: { x, y } });
  const v = tf.randomNormal([1, analyzer.size], 0, 1, 'float32', 3) as tf.Tensor2D;
  return {
    step: async () => tf.dispose(await analyzer.operator.matmat(v)),
    dispose: () => {
      tf.dispose([x, y, v]);
      model.dispose();
    },
  };
}

// ---------------------------------------------------------------- parent: the turns
class Side {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;
  constructor(
    readonly threads: number,
    env: Record<string, string>,
  ) {
    this.child = spawn(
      process.execPath,
      [...process.execArgv, fileURLToPath(import.meta.url), '--worker', String(threads)],
      { stdio: 'pipe', env: { ...process.env, ...env } },
    );
    this.child.stderr.on('data', (d: Buffer) => {
      const text = d.toString();
      if (!/tfjs-node|={5,}|^\s*$/.test(text)) process.stderr.write(`[${threads}t] ${text}`);
    });
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }
  async next(): Promise<Record<string, unknown>> {
    for (;;) {
      const { value, done } = await this.lines.next();
      if (done) throw new Error(`the ${this.threads}-thread worker exited`);
      if ((value as string).startsWith('{')) return JSON.parse(value as string);
    }
  }
  async request(req: object): Promise<Record<string, unknown>> {
    this.child.stdin.write(`${JSON.stringify(req)}\n`);
    return this.next();
  }
  close(): void {
    this.child.stdin.end();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const range = (xs: number[]) =>
  `${median(xs).toFixed(2)} [${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}]`;
const load = () => loadavg()[0]!.toFixed(1);

async function parent(): Promise<void> {
  const a = threadsArg('a', '1');
  const b = threadsArg('b', 'auto');
  const rounds = Number(arg('rounds', '5'));
  const minTurnMs = Number(arg('min-turn-ms', '400'));
  const groups = arg('groups', GROUPS.join(',')).split(',') as Group[];
  for (const g of groups) {
    if (!GROUPS.includes(g)) throw new Error(`--groups: '${g}'; expected ${GROUPS.join(', ')}`);
  }
  const envA = envArg('a-env');
  const envB = envArg('b-env');
  const sides = [new Side(a, envA), new Side(b, envB)] as const;
  for (const s of sides) await s.next(); // ready
  console.log(
    `ONNX Runtime threads: A ${threadsText(a)}${envText(envA)}, B ${threadsText(b)}${envText(envB)} (auto here: ${autoThreads()}); ` +
      `${rounds} rounds of A B B A turns, each >= ${minTurnMs} ms; load ${load()}`,
  );
  for (const group of groups) {
    const keys = configsOf(group);
    const loadBefore = load();
    const steps = new Map<string, number>();
    for (const key of keys) {
      const ready = await Promise.all(sides.map((s) => s.request({ setup: key })));
      for (const [i, r] of ready.entries()) {
        if (group !== 'analysis' && (r['replayed'] as number) < 2) {
          console.log(
            `  ${key} on ${sides[i]!.threads}t: not replaying (${String(r['lastReason'])})`,
          );
        }
      }
      const slower = Math.max(...ready.map((r) => r['ms'] as number));
      steps.set(key, Math.max(1, Math.ceil(minTurnMs / slower)));
    }
    /** Per side and key: per round, ms per step (wall, CPU). */
    const wall = sides.map(() => new Map<string, number[]>());
    const cpu = sides.map(() => new Map<string, number[]>());
    for (let r = 0; r < rounds; r++) {
      for (const key of keys) {
        const n = steps.get(key)!;
        const sum = [
          { wall: 0, cpu: 0 },
          { wall: 0, cpu: 0 },
        ];
        for (const i of [0, 1, 1, 0]) {
          const t = await sides[i]!.request({ run: key, steps: n });
          sum[i]!.wall += (t['wall'] as number) / n / 2;
          sum[i]!.cpu += (t['cpu'] as number) / n / 2;
        }
        for (const i of [0, 1]) {
          wall[i]!.set(key, [...(wall[i]!.get(key) ?? []), sum[i]!.wall]);
          cpu[i]!.set(key, [...(cpu[i]!.get(key) ?? []), sum[i]!.cpu]);
        }
      }
    }
    for (const key of keys) await Promise.all(sides.map((s) => s.request({ end: key })));
    console.log(`\n${group} (load ${loadBefore} -> ${load()}), ms per step, wall (CPU):`);
    const ratios = (xs: number[], ys: number[]) => xs.map((x, r) => x / ys[r]!);
    for (const key of keys) {
      const [wa, wb] = [wall[0]!.get(key)!, wall[1]!.get(key)!];
      const [ca, cb] = [cpu[0]!.get(key)!, cpu[1]!.get(key)!];
      console.log(
        `  ${key.padEnd(26)} ${a}t ${median(wa).toFixed(1)} (${median(ca).toFixed(1)})  ` +
          `${b}t ${median(wb).toFixed(1)} (${median(cb).toFixed(1)})  ` +
          `B/A wall ${range(ratios(wb, wa))}, CPU ${range(ratios(cb, ca))}  (${steps.get(key)} steps a turn)`,
      );
    }
    if (keys.length < 2) continue;
    const [adam, ada] = keys;
    const perSide = sides.map(
      (s, i) =>
        `${s.threads}t ${range(ratios(wall[i]!.get(ada!)!, wall[i]!.get(adam!)!))} ` +
        `(CPU ${median(ratios(cpu[i]!.get(ada!)!, cpu[i]!.get(adam!)!)).toFixed(2)})`,
    );
    console.log(`  AdaHessian/Adam: ${perSide.join(', ')}`);
  }
  for (const s of sides) s.close();
}

const workerArg = arg('worker', '');
if (workerArg !== '') await worker(Number(workerArg));
else await parent();
