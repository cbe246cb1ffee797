/**
 * The choice per op between a JS loop and an ONNX Runtime call (src/native/kernels/): each op at
 * the transformer's sizes, as our JS kernel's loop and as a one-node ONNX graph (one thread,
 * output array preallocated for both), interleaved call by call; median microseconds per call
 * and JS / ONNX. Also the crossover of a same-shape Add (MIN_ELEMENTWISE_SIZE).
 *
 *   npx tsx bench/speed/js-vs-onnx.ts [--reps 30]
 */
import type { OnnxGraph } from '../../src/native/onnx-model.js';
import { loadOnnxRuntime, SessionCache } from '../../src/native/onnx-runtime.js';
import { simplifyTranspose, transposeValues } from '../../src/native/kernels/transpose.js';
import { softmaxRows } from '../../src/native/kernels/softmax.js';
import { erfKernel, expKernel, negKernel, type Loop } from '../../src/native/kernels/unary.js';

const repsArg = process.argv.indexOf('--reps');
const reps = repsArg >= 0 ? Number(process.argv[repsArg + 1]) : 30;

const runtime = loadOnnxRuntime();
if (runtime == null) throw new Error('onnxruntime-node is not available');
const cache = new SessionCache(runtime, { threads: 1, cacheSize: 64, arenas: false });

const random = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 4 - 2);
const unaryGraph = (op: string, shape: number[], attributes = {}): OnnxGraph => ({
  nodes: [{ opType: op, inputs: ['x'], outputs: ['y'], attributes }],
  inputs: [{ name: 'x', shape }],
  outputs: [{ name: 'y', shape }],
});

interface Case {
  name: string;
  js: () => void;
  onnx: () => void;
}

function unaryCase(name: string, op: string, shape: number[], loop: Loop): Case {
  const n = shape.reduce((a, b) => a * b, 1);
  const x = random(n);
  const out = new Float32Array(n);
  const inputs = [{ data: x, shape }];
  return {
    name: `${name} [${shape}]`,
    js: () => loop(x, out),
    onnx: () =>
      void cache.run(
        `${op}|${shape}`,
        () => unaryGraph(op, shape),
        inputs,
        () => out,
      ),
  };
}

// The JS sides are the shipped loops (not copies): what the kernels run.
const softmaxLoop =
  (width: number): Loop =>
  (x, out) =>
    softmaxRows(x, out, width);

function transposeCase(shape: number[], perm: number[]): Case {
  const n = shape.reduce((a, b) => a * b, 1);
  const x = random(n);
  const out = new Float32Array(n);
  const simple = simplifyTranspose(shape, perm);
  const outShape = perm.map((a) => shape[a]!);
  return {
    name: `Transpose [${shape}] by [${perm}]`,
    js: () => transposeValues(x, out, simple.shape, simple.perm),
    onnx: () =>
      void cache.run(
        `T|${shape}|${perm}`,
        () => ({
          nodes: [
            {
              opType: 'Transpose',
              inputs: ['x'],
              outputs: ['y'],
              attributes: { perm: { kind: 'ints', value: perm } },
            },
          ],
          inputs: [{ name: 'x', shape }],
          outputs: [{ name: 'y', shape: outShape }],
        }),
        [{ data: x, shape }],
        () => out,
      ),
  };
}

function addCase(n: number): Case {
  const a = random(n);
  const b = random(n);
  const out = new Float32Array(n);
  const shape = [n];
  return {
    name: `Add same shape [${n}]`,
    js: () => {
      for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
    },
    onnx: () =>
      void cache.run(
        `Add|${n}`,
        () => ({
          nodes: [{ opType: 'Add', inputs: ['a', 'b'], outputs: ['y'] }],
          inputs: [
            { name: 'a', shape },
            { name: 'b', shape },
          ],
          outputs: [{ name: 'y', shape }],
        }),
        [
          { data: a, shape },
          { data: b, shape },
        ],
        () => out,
      ),
  };
}

/**
 * Sum over the middle axis of [outer, n, inner]: JS as reduce.ts does it (a transpose first
 * when inner > 1), ONNX ReduceSum on the shape and axis given (the kernel's own, or simplified).
 */
function sumCase(
  outer: number,
  n: number,
  inner: number,
  onnxShape: number[],
  onnxAxis: number,
): Case {
  const size = outer * n * inner;
  const x = random(size);
  const out = new Float32Array(outer * inner);
  const scratch = new Float32Array(size);
  const onnxOut = onnxShape.filter((_, i) => i !== onnxAxis);
  return {
    name: `Sum [${outer},${n},${inner}] over axis 1, ONNX sees [${onnxShape}] axis ${onnxAxis}`,
    js: () => {
      let values = x;
      if (inner > 1) {
        transposeValues(x, scratch, [outer, n, inner], [0, 2, 1]);
        values = scratch;
      }
      for (let i = 0, offset = 0; i < out.length; i++, offset += n) {
        let sum = 0;
        for (let j = 0; j < n; j++) sum += values[offset + j]!;
        out[i] = sum;
      }
    },
    onnx: () =>
      void cache.run(
        `ReduceSum|${onnxShape}|${onnxAxis}`,
        () => ({
          nodes: [
            {
              opType: 'ReduceSum',
              inputs: ['x', 'axes'],
              outputs: ['y'],
              attributes: { keepdims: { kind: 'int', value: 0 } },
            },
          ],
          initializers: [{ name: 'axes', values: [onnxAxis] }],
          inputs: [{ name: 'x', shape: onnxShape }],
          outputs: [{ name: 'y', shape: onnxOut }],
        }),
        [{ data: x, shape: onnxShape }],
        () => out,
      ),
  };
}

/** ONNX Mul on the kernel's shapes against the same data as flat vectors (no JS side). */
function mulShapesCase(aShape: number[], bShape: number[]): Case {
  const n = aShape.reduce((p, q) => p * q, 1);
  const [a, b, out] = [random(n), random(n), new Float32Array(n)];
  const graph = (sa: number[], sb: number[]) => () => ({
    nodes: [{ opType: 'Mul', inputs: ['a', 'b'], outputs: ['y'] }],
    inputs: [
      { name: 'a', shape: sa },
      { name: 'b', shape: sb },
    ],
    outputs: [{ name: 'y', shape: sa.length >= sb.length ? sa : sb }],
  });
  const run = (sa: number[], sb: number[]) =>
    void cache.run(
      `Mul|${sa}|${sb}`,
      graph(sa, sb),
      [
        { data: a, shape: sa },
        { data: b, shape: sb },
      ],
      () => out,
    );
  return {
    name: `Mul [${aShape}] x [${bShape}]: "JS" column = ONNX on flat [${n}]`,
    js: () => run([n], [n]),
    onnx: () => run(aShape, bShape),
  };
}

const cases: Case[] = [
  mulShapesCase([1, 64, 64, 64], [64, 64, 64]),
  mulShapesCase([64, 64, 64], [64, 64, 64]),
  sumCase(4096, 64, 1, [4096, 64, 1], 1),
  sumCase(4096, 64, 1, [4096, 64], 1),
  sumCase(1, 64, 4096, [1, 64, 4096], 1),
  sumCase(1, 64, 4096, [64, 4096], 0),
  transposeCase([64, 2, 64, 32], [0, 2, 1, 3]),
  transposeCase([64, 64, 2, 32], [0, 2, 1, 3]),
  transposeCase([4096, 64], [1, 0]),
  unaryCase('Softmax', 'Softmax', [64, 2, 64, 64], softmaxLoop(64)),
  unaryCase('Exp', 'Exp', [64, 64, 128], expKernel.loop),
  unaryCase('Erf', 'Erf', [64, 64, 128], erfKernel.loop),
  unaryCase('Neg', 'Neg', [64, 64, 128], negKernel.loop),
  addCase(1024),
  addCase(4096),
  addCase(16384),
  addCase(262144),
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const load = (await import('node:os')).loadavg().map((l) => l.toFixed(2));
console.log(`median us per call over ${reps} interleaved calls; load ${load.join(' ')}`);
console.log('op | JS | ONNX Runtime | JS / ONNX');
for (const c of cases) {
  const js: number[] = [];
  const onnx: number[] = [];
  c.js();
  c.onnx();
  for (let i = 0; i < reps; i++) {
    let t0 = performance.now();
    c.js();
    js.push((performance.now() - t0) * 1000);
    t0 = performance.now();
    c.onnx();
    onnx.push((performance.now() - t0) * 1000);
  }
  const [j, o] = [median(js), median(onnx)];
  console.log(`${c.name} | ${j.toFixed(0)} | ${o.toFixed(0)} | ${(j / o).toFixed(2)}`);
}
cache.dispose();
