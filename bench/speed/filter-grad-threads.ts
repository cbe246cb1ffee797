/**
 * The small CNN's per-tap filter-gradient product (translate-conv.ts: [Cin*?, K] x [K, Cout] with
 * K = batch * h * w) on one and two ONNX Runtime threads, against the same product split over K
 * into k batched products plus a sum of the k partial results (MLAS threads a batch of products
 * by batch entry; one product with small M and N by M and N only, each part reading all of K).
 * Each form alone in a session, run alternately; wall and process CPU medians.
 *
 *   npx tsx bench/speed/filter-grad-threads.ts                  # M 32, K 25088, N 16 (second conv)
 *   npx tsx bench/speed/filter-grad-threads.ts --m 9 --k 100352 --n 16 --blocks 16
 */
import { type OnnxGraph } from '../../src/native/onnx-model.js';
import { arg } from './args.js';
import { openSession, Tensor } from './ort-session.js';

const [M, K, N] = [Number(arg('m', '32')), Number(arg('k', '25088')), Number(arg('n', '16'))];
const blocks = Number(arg('blocks', '16'));
const runs = Number(arg('runs', '30'));
if (K % blocks !== 0) throw new Error(`--blocks ${blocks} does not divide K ${K}`);
const keep0 = { keepdims: { kind: 'int', value: 0 } } as const;

// One product of a [M, K] and b [K, N]; or, with a as [blocks, M, K/blocks] (already so laid
// out by whatever wrote it) and b as [blocks, K/blocks, N], a batch of products and their sum.
const plain: OnnxGraph = {
  nodes: [{ opType: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }],
  inputs: [
    { name: 'a', shape: [M, K] },
    { name: 'b', shape: [K, N] },
  ],
  outputs: [{ name: 'y', shape: [M, N] }],
};
const split: OnnxGraph = {
  nodes: [
    { opType: 'Reshape', inputs: ['b', 'bs'], outputs: ['bb'] },
    { opType: 'MatMul', inputs: ['a', 'bb'], outputs: ['p'] },
    { opType: 'ReduceSum', inputs: ['p', 'a0'], outputs: ['y'], attributes: keep0 },
  ],
  inputs: [
    { name: 'a', shape: [blocks, M, K / blocks] },
    { name: 'b', shape: [K, N] },
  ],
  outputs: [{ name: 'y', shape: [M, N] }],
  initializers: [
    { name: 'bs', values: [blocks, K / blocks, N] },
    { name: 'a0', values: [0] },
  ],
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const a = new Float32Array(M * K).map((_, i) => Math.sin(i * 0.37));
const b = new Float32Array(K * N).map((_, i) => Math.cos(i * 0.11));
const cases = (
  [
    ['plain', plain],
    ['split', split],
  ] as const
).flatMap(([name, g]) =>
  [1, 2].map((threads) => ({
    name: `${name} ${threads}t`,
    s: openSession(g, threads),
    feeds: {
      a: new Tensor('float32', a, name === 'plain' ? [M, K] : [blocks, M, K / blocks]),
      b: new Tensor('float32', b, [K, N]),
    },
    y: new Float32Array(M * N),
    wall: [] as number[],
    cpu: [] as number[],
  })),
);
for (let r = 0; r < runs + 2; r++) {
  for (const c of cases) {
    const t = performance.now();
    const u = process.cpuUsage();
    c.s.run(c.feeds, { y: new Tensor('float32', c.y, [M, N]) }, {});
    const used = process.cpuUsage(u);
    if (r < 2) continue;
    c.wall.push(performance.now() - t);
    c.cpu.push((used.user + used.system) / 1000);
  }
}
console.log(
  `[${M}, ${K}] x [${K}, ${N}], split in ${blocks} (${runs} alternating runs; ratios to plain 1t):`,
);
const base = cases[0]!;
for (const c of cases) {
  console.log(
    `  ${c.name.padEnd(9)} wall ${median(c.wall).toFixed(3).padStart(7)} ms (${(median(c.wall) / median(base.wall)).toFixed(2)})` +
      `  cpu ${median(c.cpu).toFixed(3).padStart(7)} ms (${(median(c.cpu) / median(base.cpu)).toFixed(2)})`,
  );
}
