/**
 * The char transformer's matrix products in ONNX Runtime (one thread), each written several
 * ways that give the same values, timed alternately (medians and minima) and compared bit for
 * bit with the first form; with --flush, a 128 MB buffer is written between runs, so that the
 * operands come from memory rather than cache, as the step graph's gradient and sweep read the
 * forward pass's values long after they were made.
 *
 *   npx tsx bench/speed/matmul-forms.ts                  # all cases, warm cache
 *   npx tsx bench/speed/matmul-forms.ts --flush          # operands cold
 *   npx tsx bench/speed/matmul-forms.ts --case bias --big-k
 *
 * Cases: 'dense' ([1, 4096, 64] x [1, 64, 128] as 3-D or 2-D), 'weight-grad' (X^T dY with
 * K = 4096: fused transpose, Gemm transA, an explicit Transpose kept, X^T materialized and read
 * as [1, M, K] (which ONNX Runtime cannot fuse back into a transA product), K in 32 blocks of 128
 * as a batched product and a ReduceSum over the blocks), 'attention-grad'
 * (P^T dO over [64, 2, 64, 64] and [64, 2, 64, 32]), 'bias' (MatMul, Reshape, Add against Gemm
 * with the bias; --big-k: K of 192 to 4096, where MLAS sums K in several blocks).
 */
import type { OnnxGraph, OnnxNode } from '../../src/native/onnx-model.js';
import { arg } from './args.js';
import { openSession, Tensor } from './ort-session.js';

const flush = process.argv.includes('--flush');
const bigK = process.argv.includes('--big-k');
const only = arg('case', 'all');
const reps = Number(arg('runs', '30'));
const junk = new Float32Array(flush ? 32 << 20 : 1);

const int64s = (name: string, v: number[]) => ({
  name,
  dims: [v.length],
  dtype: 'int64' as const,
  raw: new Uint8Array(BigInt64Array.from(v.map(BigInt)).buffer),
});
const node = (
  opType: string,
  inputs: string[],
  outputs: string[],
  attributes?: OnnxNode['attributes'],
): OnnxNode => ({ opType, inputs, outputs, ...(attributes ? { attributes } : {}) });
const perm = (value: number[]) => ({ perm: { kind: 'ints' as const, value } });
const transA = { transA: { kind: 'int' as const, value: 1 } };

/** Deterministic values in [-0.5, 0.5). */
function values(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    a[i] = x / 2147483648 - 0.5;
  }
  return a;
}

interface Form {
  name: string;
  graph: OnnxGraph;
}

/** Runs the forms alternately on the same inputs; the output is `y` of shape `outShape`. */
function compare(forms: Form[], inputs: Record<string, number[]>, outShape: number[]): void {
  const sessions = forms.map((f) => openSession(f.graph));
  const feeds: Record<string, object> = {};
  Object.entries(inputs).forEach(([name, shape], k) => {
    feeds[name] = new Tensor(
      'float32',
      values(
        shape.reduce((a, b) => a * b, 1),
        k + 1,
      ),
      shape,
    );
  });
  const outs = forms.map(() => new Float32Array(outShape.reduce((a, b) => a * b, 1)));
  const times = forms.map(() => [] as number[]);
  for (let r = 0; r < reps + 3; r++) {
    sessions.forEach((s, k) => {
      if (flush) junk.fill(r + k);
      const fetches = { y: new Tensor('float32', outs[k], outShape) };
      const t = performance.now();
      s.run(feeds, fetches, {});
      if (r >= 3) times[k]!.push(performance.now() - t);
    });
  }
  const median = (x: number[]) => [...x].sort((a, b) => a - b)[x.length >> 1]!;
  forms.forEach((f, k) => {
    const same = outs[k]!.every((v, i) => Object.is(v, outs[0]![i]));
    let diff = 0;
    outs[k]!.forEach((v, i) => (diff = Math.max(diff, Math.abs(v - outs[0]![i]!))));
    console.log(
      `  ${f.name.padEnd(44)} median ${median(times[k]!).toFixed(3)} ms, min ${Math.min(...times[k]!).toFixed(3)}; ` +
        (k === 0 ? 'reference' : same ? 'bit for bit the same' : `differs by up to ${diff}`),
    );
  });
}

const io = (inputs: Record<string, number[]>, out: number[]) => ({
  inputs: Object.entries(inputs).map(([name, shape]) => ({ name, shape })),
  outputs: [{ name: 'y', shape: out }],
});

console.log(`ONNX Runtime, 1 thread, ${reps} runs per form${flush ? ', cache flushed' : ''}`);
if (only === 'all' || only === 'dense') {
  const ins = { a: [1, 4096, 64], b: [1, 64, 128] };
  const out = [1, 4096, 128];
  console.log('dense [1, 4096, 64] x [1, 64, 128]:');
  compare(
    [
      {
        name: 'MatMul, 3-D',
        graph: { nodes: [node('MatMul', ['a', 'b'], ['y'])], ...io(ins, out) },
      },
      {
        name: 'MatMul on 2-D reshapes',
        graph: {
          nodes: [
            node('Reshape', ['a', 's1'], ['a2']),
            node('Reshape', ['b', 's2'], ['b2']),
            node('MatMul', ['a2', 'b2'], ['y2']),
            node('Reshape', ['y2', 's3'], ['y']),
          ],
          ...io(ins, out),
          tensorInitializers: [
            int64s('s1', [4096, 64]),
            int64s('s2', [64, 128]),
            int64s('s3', out),
          ],
        },
      },
    ],
    ins,
    out,
  );
}
if (only === 'all' || only === 'weight-grad') {
  for (const [rows, cols] of [
    [64, 64],
    [128, 64],
    [64, 128],
  ] as const) {
    const ins = { a: [4096, rows], b: [4096, cols] };
    const out = [rows, cols];
    console.log(`weight gradient [4096, ${rows}]^T x [4096, ${cols}]:`);
    compare(
      [
        {
          name: 'Transpose + MatMul (fused by ONNX Runtime)',
          graph: {
            nodes: [
              node('Transpose', ['a'], ['at'], perm([1, 0])),
              node('MatMul', ['at', 'b'], ['y']),
            ],
            ...io(ins, out),
          },
        },
        {
          name: 'Gemm transA',
          graph: { nodes: [node('Gemm', ['a', 'b'], ['y'], transA)], ...io(ins, out) },
        },
        {
          // MLAS sums K in blocks: 128 with transA; without it, 256 when N <= 64 (sgemm.cpp's
          // strides). So this is transA's bits only where N > 64 (or K <= 128).
          name: 'X^T materialized, read as [1, M, K]',
          graph: {
            nodes: [
              node('Transpose', ['a'], ['at'], perm([1, 0])),
              node('Reshape', ['at', 's3'], ['at3']),
              node('MatMul', ['at3', 'b'], ['y3']),
              node('Reshape', ['y3', 's2'], ['y']),
            ],
            ...io(ins, out),
            tensorInitializers: [int64s('s3', [1, rows, 4096]), int64s('s2', out)],
          },
        },
        {
          // Block k's product, then the blocks summed in order: what MLAS's transA product does
          // (each 128-deep block summed into C in turn), so the same bits, as a batch.
          name: 'K in 32 blocks, batched, ReduceSum',
          graph: {
            nodes: [
              node('Reshape', ['a', 'ka'], ['a3']),
              node('Reshape', ['b', 'kb'], ['b3']),
              node('Transpose', ['a3'], ['a3t'], perm([0, 2, 1])),
              node('MatMul', ['a3t', 'b3'], ['p']),
              node('ReduceSum', ['p', 'axis0'], ['y'], { keepdims: { kind: 'int', value: 0 } }),
            ],
            ...io(ins, out),
            tensorInitializers: [
              int64s('ka', [32, 128, rows]),
              int64s('kb', [32, 128, cols]),
              int64s('axis0', [0]),
            ],
          },
        },
        {
          name: 'Transpose kept (a second reader) + MatMul',
          graph: {
            nodes: [
              node('Transpose', ['a'], ['at'], perm([1, 0])),
              node('MatMul', ['at', 'b'], ['y']),
              node('Identity', ['at'], ['kept']),
            ],
            ...io(ins, out),
            outputs: [
              { name: 'y', shape: out },
              { name: 'kept', shape: [rows, 4096] },
            ],
          },
        },
      ],
      ins,
      out,
    );
  }
}
if (only === 'all' || only === 'attention-grad') {
  const ins = { a: [64, 2, 64, 64], b: [64, 2, 64, 32] };
  const out = [64, 2, 64, 32];
  const swap = perm([0, 1, 3, 2]);
  console.log('attention gradient P^T dO, [64, 2, 64, 64]^T x [64, 2, 64, 32]:');
  compare(
    [
      {
        name: 'Transpose + MatMul (fused)',
        graph: {
          nodes: [node('Transpose', ['a'], ['at'], swap), node('MatMul', ['at', 'b'], ['y'])],
          ...io(ins, out),
        },
      },
      {
        name: '(dO^T P)^T',
        graph: {
          nodes: [
            node('Transpose', ['b'], ['bt'], swap),
            node('MatMul', ['bt', 'a'], ['yt']),
            node('Transpose', ['yt'], ['y'], swap),
          ],
          ...io(ins, out),
        },
      },
    ],
    ins,
    out,
  );
}
if (only === 'all' || only === 'bias') {
  const shapes = bigK
    ? [
        [4096, 192, 64],
        [4096, 256, 64],
        [4096, 512, 64],
        [64, 4096, 64],
      ]
    : [
        [4096, 64, 64],
        [4096, 64, 128],
        [4096, 128, 64],
        [4096, 64, 96],
      ];
  for (const [m, k, n] of shapes as [number, number, number][]) {
    const ins = { a: [m, k], b: [k, n], c: [n] };
    const out = [m, n];
    console.log(`dense with bias, M ${m}, K ${k}, N ${n}:`);
    compare(
      [
        {
          name: 'MatMul, Reshape, Add (as translated)',
          graph: {
            nodes: [
              node('MatMul', ['a', 'b'], ['p']),
              node('Reshape', ['p', 's'], ['q']),
              node('Add', ['q', 'c'], ['y']),
            ],
            ...io(ins, out),
            tensorInitializers: [int64s('s', out)],
          },
        },
        {
          name: 'Gemm with the bias',
          graph: { nodes: [node('Gemm', ['a', 'b', 'c'], ['y'])], ...io(ins, out) },
        },
      ],
      ins,
      out,
    );
  }
}
