/**
 * Where the demo's mean ms/step goes (`adahessian demo`: the small CNN on 3,000 Fashion-MNIST
 * images, batch 64, 3 epochs, on its default path). Each optimizer is trained exactly as the
 * demo trains it (its data, settings, seed and path; the Hessian analysis left out), and each
 * step's own time (training.ts's onStep `ms`, what msPerStep averages) is put in one of:
 *
 *   replay     a confirmed graph replayed
 *   capture    captured op by op, then a graph compiled and checked against op by op (or not)
 *   confirm    the stubbed capture confirming a graph, and that graph's first run
 *   op by op   none of these (no step graph for it)
 *
 * with, inside the non-replayed steps, the time StepGraphCompiler spent compiling (build,
 * encode, ONNX Runtime's session), in runGraph, and capturing (the op-by-op step under the
 * recorder). Prototype methods are wrapped for this benchmark only.
 *
 *   npx tsx bench/speed/demo-steps.ts
 *   npx tsx bench/speed/demo-steps.ts --rounds 2 --optimizers adahessian
 */
import * as tf from '@tensorflow/tfjs';
import { prepareBackend } from '../../src/cli/backend.js';
import { memoryIo } from '../../src/cli/output.js';
import { loadDataset } from '../../src/cli/datasets.js';
import { resolveTrainConfig, type TrainSettings } from '../../src/cli/train-config.js';
import { train } from '../../src/cli/training.js';
import { DEMO_DEFAULTS, demoTrainSettings } from '../../src/cli/commands/demo.js';
import { StepGraphCompiler } from '../../src/native/step-graph/step-graph.js';
import { arg } from './args.js';

const rounds = Number(arg('rounds', '1'));
const optimizers = arg('optimizers', 'adam,adahessian').split(',');
const verbose = process.argv.includes('--verbose');

const PARTS = ['capture', 'stubbedCapture', 'compile', 'runGraph', 'stubForward'] as const;
type Part = (typeof PARTS)[number];
const spent: Record<Part, number> = {
  capture: 0,
  stubbedCapture: 0,
  compile: 0,
  runGraph: 0,
  stubForward: 0,
};
const calls: Record<Part, number> = { ...spent };

function wrap(method: string, part: (args: unknown[]) => Part): void {
  const proto = StepGraphCompiler.prototype as unknown as Record<
    string,
    (...a: unknown[]) => unknown
  >;
  const original = proto[method]!;
  proto[method] = function (this: unknown, ...a: unknown[]) {
    const p = part(a);
    const t0 = performance.now();
    try {
      return original.apply(this, a);
    } finally {
      spent[p] += performance.now() - t0;
      calls[p]++;
    }
  };
}
wrap('capture', (a) => (a[3] != null ? 'stubbedCapture' : 'capture'));
wrap('compile', () => 'compile');
wrap('runGraph', () => 'runGraph');
wrap('stubForward', () => 'stubForward');

const path = await prepareBackend(undefined, undefined, undefined, undefined);
console.log(
  `path: ${path.backend}${path.native ? ` + native, step graphs ${path.stepGraphs}` : ''}; load ${(
    await import('node:os')
  )
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
const settings = demoTrainSettings({ ...DEMO_DEFAULTS, backend: path.backend });
const data = loadDataset(resolveTrainConfig(settings));

type Kind = 'replay' | 'capture' | 'confirm' | 'op by op';
const means: Record<string, number[]> = {};
const cpuMeans: Record<string, number[]> = {};
for (let round = 0; round < rounds; round++) {
  for (const optimizer of optimizers) {
    const config = resolveTrainConfig({
      ...settings,
      optimizer: optimizer as TrainSettings['optimizer'],
    });
    const before = { ...spent };
    const beforeCalls = { ...calls };
    const steps: { kind: Kind; ms: number; epoch: number; step: number; parts: string }[] = [];
    let last = { ...calls };
    let lastSpent = { ...spent };
    // Process CPU time from one step's end to the next's (the batch's slicing included): less
    // disturbed by other processes' load than the wall time msPerStep averages.
    const cpuNow = () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    };
    let lastCpu = cpuNow();
    const cpuByKind = new Map<Kind, number>();
    const result = await train(
      {
        ...config,
        preloaded: data,
        onStep: ({ epoch, step, ms }) => {
          const d = (p: Part) => calls[p] - last[p];
          const kind: Kind =
            d('capture') > 0
              ? 'capture'
              : d('stubbedCapture') > 0
                ? 'confirm'
                : d('stubForward') > 0 && d('runGraph') > 0
                  ? 'replay'
                  : 'op by op';
          const parts = PARTS.filter((p) => spent[p] > lastSpent[p])
            .map((p) => `${p} ${(spent[p] - lastSpent[p]).toFixed(1)}`)
            .join(', ');
          last = { ...calls };
          lastSpent = { ...spent };
          const c = cpuNow();
          cpuByKind.set(kind, (cpuByKind.get(kind) ?? 0) + c - lastCpu);
          lastCpu = c;
          steps.push({ kind, ms, epoch, step, parts });
        },
      },
      memoryIo(),
    );
    const total = steps.reduce((a, s) => a + s.ms, 0);
    const cpuTotal = [...cpuByKind.values()].reduce((a, b) => a + b, 0);
    const byKind = new Map<Kind, number[]>();
    for (const s of steps) byKind.set(s.kind, [...(byKind.get(s.kind) ?? []), s.ms]);
    console.log(
      `\n${optimizer} (round ${round + 1}): ${steps.length} steps, mean ${result.msPerStep.toFixed(1)} ms/step (sum of steps ${total.toFixed(0)} ms); CPU ${(cpuTotal / steps.length).toFixed(1)} ms/step (${[...cpuByKind].map(([k, v]) => `${k} ${(v / steps.length).toFixed(1)}`).join(', ')})`,
    );
    for (const [kind, ms] of byKind) {
      const sum = ms.reduce((a, b) => a + b, 0);
      const sorted = [...ms].sort((a, b) => a - b);
      console.log(
        `  ${kind.padEnd(9)} ${String(ms.length).padStart(4)} steps  ${sum.toFixed(0).padStart(6)} ms (${((100 * sum) / total).toFixed(1).padStart(5)} %)  median ${sorted[sorted.length >> 1]!.toFixed(1)}  max ${sorted.at(-1)!.toFixed(1)}  ms/step contribution ${(sum / steps.length).toFixed(1)}`,
      );
    }
    console.log(
      '  inside: ' +
        PARTS.map(
          (p) => `${p} ${(spent[p] - before[p]).toFixed(0)} ms / ${calls[p] - beforeCalls[p]}`,
        ).join(', '),
    );
    const replays = byKind.get('replay') ?? [];
    if (replays.length > 0) {
      const sorted = [...replays].sort((a, b) => a - b);
      console.log(
        `  if every step were a median replay: ${sorted[sorted.length >> 1]!.toFixed(1)} ms/step`,
      );
    }
    if (verbose) {
      for (const s of steps) {
        if (s.kind !== 'replay')
          console.log(`    e${s.epoch} s${s.step} ${s.kind} ${s.ms.toFixed(1)} ms (${s.parts})`);
      }
    }
    (means[optimizer] ??= []).push(result.msPerStep);
    (cpuMeans[optimizer] ??= []).push(cpuTotal / steps.length);
  }
  if (means['adam'] != null && means['adahessian'] != null) {
    console.log(
      `\nround ${round + 1}: AdaHessian/Adam ${(means['adahessian'].at(-1)! / means['adam'].at(-1)!).toFixed(2)} (CPU ${(cpuMeans['adahessian']!.at(-1)! / cpuMeans['adam']!.at(-1)!).toFixed(2)})`,
    );
  }
}
data.dispose();
void tf;
