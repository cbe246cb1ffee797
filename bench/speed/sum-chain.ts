/**
 * A chain of accumulating Adds ((a + b) + c) + d against ONNX Runtime's variadic Sum(a, b, c, d):
 * the same bits? faster? ONNX Runtime's CPU Sum (element_wise_ops.cc, Sum_8 ->
 * UntypedBroadcastVariadic) adds its inputs pairwise in order into temporaries, one pass per
 * input after the first, on one thread: so it should round as the chain does, and it saves
 * only the nodes, not passes over memory. This measures that.
 *
 *   npx tsx bench/speed/sum-chain.ts                     # [64, 64, 64] float32, 4 operands
 *   npx tsx bench/speed/sum-chain.ts --shape 4096,64 --operands 6 --runs 200 --threads 2
 *   npx tsx bench/speed/sum-chain.ts --broadcast        # the last operand [shape's last axis]
 */
import type { OnnxGraph, OnnxNode } from '../../src/native/onnx-model.js';
import { arg } from './args.js';
import { openSession, Tensor } from './ort-session.js';

const shape = arg('shape', '64,64,64').split(',').map(Number);
const operands = Number(arg('operands', '4'));
const runs = Number(arg('runs', '100'));
const threads = Number(arg('threads', '1'));
const broadcast = process.argv.includes('--broadcast');
const size = shape.reduce((a, b) => a * b, 1);
const names = Array.from({ length: operands }, (_, k) => `x${k}`);
const shapeOf = (k: number) => (broadcast && k === operands - 1 ? [shape.at(-1)!] : shape);

function graph(fused: boolean): OnnxGraph {
  const nodes: OnnxNode[] = [];
  if (fused) nodes.push({ opType: 'Sum', inputs: names, outputs: ['y'] });
  else {
    let acc = names[0]!;
    for (let k = 1; k < operands; k++) {
      const out = k === operands - 1 ? 'y' : `t${k}`;
      nodes.push({ opType: 'Add', inputs: [acc, names[k]!], outputs: [out] });
      acc = out;
    }
  }
  return {
    nodes,
    inputs: names.map((name, k) => ({ name, shape: shapeOf(k), dtype: 'float32' as const })),
    outputs: [{ name: 'y', shape, dtype: 'float32' }],
    tensorInitializers: [],
  };
}

// Values of mixed magnitudes, so that the order of the additions shows in the last bits.
let seed = 7;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 2;
const feeds: Record<string, object> = {};
names.forEach((name, k) => {
  const n = shapeOf(k).reduce((a, b) => a * b, 1);
  const data = Float32Array.from({ length: n }, () => random() * 10 ** ((k % 3) - 1));
  feeds[name] = new Tensor('float32', data, shapeOf(k));
});
const results = [new Float32Array(size), new Float32Array(size)];
const sessions = [graph(false), graph(true)].map((g, k) => {
  const s = openSession(g, threads);
  const fetches = { y: new Tensor('float32', results[k]!, shape) };
  return () => s.run(feeds, fetches, {});
});
const times: number[][] = [[], []];
// Process CPU time too: on this shared machine less noisy than wall time.
const cpu: number[][] = [[], []];
for (let r = 0; r < runs + 3; r++) {
  for (const [k, run] of sessions.entries()) {
    const t = performance.now();
    const c = process.cpuUsage();
    run();
    const used = process.cpuUsage(c);
    if (r >= 3) {
      times[k]!.push(performance.now() - t);
      cpu[k]!.push((used.user + used.system) / 1000);
    }
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
let differing = 0;
results[0]!.forEach((v, i) => {
  if (Object.is(v, results[1]![i]) === false) differing++;
});
const [chain, sum] = times.map(median) as [number, number];
const [chainCpu, sumCpu] = cpu.map(median) as [number, number];
console.log(
  `[${shape}] x ${operands}${broadcast ? ' (last one broadcast)' : ''}, ${threads} thread(s), ${runs} runs: ` +
    `Add chain ${chain.toFixed(3)} ms, Sum ${sum.toFixed(3)} ms, Sum / chain ${(sum / chain).toFixed(3)} ` +
    `(process CPU ${chainCpu.toFixed(3)} / ${sumCpu.toFixed(3)} ms, ${(sumCpu / chainCpu).toFixed(3)}); ` +
    `elements differing: ${differing} of ${size}`,
);
