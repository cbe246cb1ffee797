/**
 * ONNX Runtime's ReduceSum over the leading axis of [R, N] (a convolution's bias gradient, batch
 * norm's per-channel sums: [batch * h * w, channels]) on one and two intra-op threads, against
 * two other forms of the same sum, each alone in a session, run alternately (wall and process
 * CPU medians):
 *   reducesum  ReduceSum(axes 0): what translate.ts writes. ONNX Runtime's "RK" case splits the
 *              N kept columns among the threads, every part walking all R rows.
 *   matmul     ones[1, R] x X: one MLAS product.
 *   split      X as [k, R/k, N], ReduceSum(axes 1) then ReduceSum(axes 0): ONNX Runtime's "KRK"
 *              case, which splits the k row blocks among the threads.
 *
 *   npx tsx bench/speed/reduce-threads.ts                       # the small CNN's and ResNet-20's shapes
 *   npx tsx bench/speed/reduce-threads.ts --shapes 100352x16 --runs 40 --k 8
 */
import { type OnnxGraph } from '../../src/native/onnx-model.js';
import { arg } from './args.js';
import { openSession, Tensor } from './ort-session.js';

const shapes = arg('shapes', '100352x16,25088x32,50176x16,12544x32,3136x64')
  .split(',')
  .map((s) => s.split('x').map(Number) as [number, number]);
const runs = Number(arg('runs', '30'));
const k = Number(arg('k', '8'));
const forms = ['reducesum', 'matmul', 'split'] as const;

function graph(form: (typeof forms)[number], R: number, N: number): OnnxGraph {
  const int64 = (name: string, values: number[]) => ({ name, values });
  const base = {
    inputs: [{ name: 'x', shape: [R, N] }],
    outputs: [{ name: 'y', shape: [N] }],
  };
  if (form === 'reducesum')
    return {
      ...base,
      nodes: [{ opType: 'ReduceSum', inputs: ['x', 'a0'], outputs: ['y'], attributes: keep0 }],
      initializers: [int64('a0', [0])],
    };
  if (form === 'matmul')
    return {
      ...base,
      nodes: [
        { opType: 'MatMul', inputs: ['ones', 'x'], outputs: ['p'] },
        { opType: 'Reshape', inputs: ['p', 'n'], outputs: ['y'] },
      ],
      initializers: [int64('n', [N])],
      tensorInitializers: [
        {
          name: 'ones',
          dims: [1, R],
          dtype: 'float32',
          raw: new Uint8Array(new Float32Array(R).fill(1).buffer),
        },
      ],
    };
  return {
    ...base,
    nodes: [
      { opType: 'Reshape', inputs: ['x', 'blocks'], outputs: ['xb'] },
      { opType: 'ReduceSum', inputs: ['xb', 'a1'], outputs: ['partial'], attributes: keep0 },
      { opType: 'ReduceSum', inputs: ['partial', 'a0'], outputs: ['y'], attributes: keep0 },
    ],
    initializers: [int64('blocks', [k, R / k, N]), int64('a1', [1]), int64('a0', [0])],
  };
}
const keep0 = { keepdims: { kind: 'int', value: 0 } } as const;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

for (const [R, N] of shapes) {
  if (R % k !== 0) throw new Error(`--k ${k} does not divide ${R} rows`);
  const x = new Float32Array(R * N);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37) + 0.1;
  const exact = new Float64Array(N);
  for (let r = 0; r < R; r++) for (let c = 0; c < N; c++) exact[c]! += x[r * N + c]!;
  const cases = forms.flatMap((form) =>
    [1, 2].map((threads) => ({
      name: `${form} ${threads}t`,
      s: openSession(graph(form, R, N), threads),
      y: new Float32Array(N),
      wall: [] as number[],
      cpu: [] as number[],
    })),
  );
  const feeds = { x: new Tensor('float32', x, [R, N]) };
  for (let r = 0; r < runs + 2; r++) {
    for (const c of cases) {
      const t = performance.now();
      const u = process.cpuUsage();
      c.s.run(feeds, { y: new Tensor('float32', c.y, [N]) }, {});
      const used = process.cpuUsage(u);
      if (r < 2) continue; // the first runs allocate
      c.wall.push(performance.now() - t);
      c.cpu.push((used.user + used.system) / 1000);
    }
  }
  const base = cases[0]!;
  console.log(`[${R}, ${N}] over axis 0 (${runs} alternating runs; ratios to reducesum 1t):`);
  for (const c of cases) {
    let err = 0;
    c.y.forEach((v, i) => (err = Math.max(err, Math.abs(v - exact[i]!) / Math.abs(exact[i]!))));
    console.log(
      `  ${c.name.padEnd(13)} wall ${median(c.wall).toFixed(3).padStart(7)} ms (${(median(c.wall) / median(base.wall)).toFixed(2)})` +
        `  cpu ${median(c.cpu).toFixed(3).padStart(7)} ms (${(median(c.cpu) / median(base.cpu)).toFixed(2)})` +
        `  largest relative error ${err.toExponential(1)}`,
    );
  }
}
