/**
 * Products that share an operand, as the AdaHessian step graphs have them (the gradient's and
 * the sweep's products of the same matrix: x^T dh and x^T hBar, dh W^T and dh V^T, x W and x V,
 * ...), timed alone: each case's products written separately and stacked (the other operands
 * concatenated, one product, its rows or columns sliced back), one hand-built graph each, run
 * alternately (ONNX Runtime, process CPU medians), whether the stacked form gives the same bits,
 * and the stacked product alone (its stacked operand fed, nothing sliced: what stacking could
 * save at best). Shapes: the small CNN's dense layer at batch 64, the char transformer's
 * products (d 64, context 64, batch 64). Measured: stacking loses on the CNN's shapes (and is
 * not bit for bit on two threads there), wins 7-12 % on one transformer shape only; no rewrite
 * was kept (docs/PERFORMANCE.md, eleventh session, engineer B, second task).
 *
 *   npx tsx bench/speed/shared-operand-products.ts --runs 60 [--threads 1] [--only cnn|tr]
 */
import type { OnnxGraph, OnnxNode } from '../../src/native/onnx-model.js';
import { arg } from './args.js';
import { openSession, Tensor } from './ort-session.js';

const runs = Number(arg('runs', '40'));
const threads = Number(arg('threads', '1'));
const only = arg('only', '');

type Init = NonNullable<OnnxGraph['tensorInitializers']>[number];
class G {
  nodes: OnnxNode[] = [];
  inits = new Map<string, Init>();
  n = 0;
  i64(v: number[]): string {
    const name = `i${v.join('_').replace(/-/g, 'm')}`;
    if (!this.inits.has(name))
      this.inits.set(name, {
        name,
        dims: [v.length],
        dtype: 'int64',
        raw: new Uint8Array(BigInt64Array.from(v.map(BigInt)).buffer),
      });
    return name;
  }
  op(opType: string, inputs: string[], attrs?: OnnxNode['attributes']): string {
    const out = `t${this.n++}`;
    this.nodes.push({ opType, inputs, outputs: [out], ...(attrs ? { attributes: attrs } : {}) });
    return out;
  }
  mm = (a: string, b: string) => this.op('MatMul', [a, b]);
  t = (x: string) => this.op('Transpose', [x], { perm: { kind: 'ints', value: [1, 0] } });
  concat = (xs: string[], axis: number) =>
    this.op('Concat', xs, { axis: { kind: 'int', value: axis } });
  /** `x`'s [start, start + n) along `axis`. */
  slice = (x: string, axis: number, start: number, n: number) =>
    this.op('Slice', [x, this.i64([start]), this.i64([start + n]), this.i64([axis])]);
}

interface Case {
  name: string;
  inputs: Record<string, number[]>;
  /** Every output's shape. */
  out: number[];
  /** Each form's outputs (same order, same shapes). */
  forms: [string, (g: G) => string[]][];
  /** The stacked product alone (its stacked operand fed, no slices): output shape, inputs. */
  alone?: { out: number[]; inputs: Record<string, number[]>; build: (g: G) => string };
}
/** x @ B_i for i < n, B_i [k, c]: separate, or x @ [B_1 | ... | B_n] sliced by columns. */
function sharedA(name: string, x: number[], c: number, n: number, transA = false): Case {
  const bs = Array.from({ length: n }, (_, i) => `b${i}`);
  const k = transA ? x[0]! : x[1]!;
  const a = (g: G) => (transA ? g.t('x') : 'x');
  return {
    name,
    inputs: { x, ...Object.fromEntries(bs.map((b) => [b, [k, c]])) },
    out: [transA ? x[1]! : x[0]!, c],
    forms: [
      ['separate', (g) => bs.map((b) => g.mm(a(g), b))],
      [
        'stacked columns',
        (g) => {
          const p = g.mm(a(g), g.concat(bs, 1));
          return bs.map((_, i) => g.slice(p, 1, i * c, c));
        },
      ],
    ],
    alone: {
      out: [transA ? x[1]! : x[0]!, n * c],
      inputs: { x, bs: [k, n * c] },
      build: (g) => g.mm(a(g), 'bs'),
    },
  };
}
/** D @ W_i^T for W_i [c, k]: separate, or D @ [W_1; ...; W_n]^T sliced by columns. */
function sharedATransB(name: string, d: number[], c: number, n: number): Case {
  const ws = Array.from({ length: n }, (_, i) => `w${i}`);
  return {
    name,
    inputs: { d, ...Object.fromEntries(ws.map((w) => [w, [c, d[1]!]])) },
    out: [d[0]!, c],
    forms: [
      ['separate', (g) => ws.map((w) => g.mm('d', g.t(w)))],
      [
        'stacked columns',
        (g) => {
          const p = g.mm('d', g.t(g.concat(ws, 0)));
          return ws.map((_, i) => g.slice(p, 1, i * c, c));
        },
      ],
    ],
    alone: {
      out: [d[0]!, n * c],
      inputs: { d, ws: [n * c, d[1]!] },
      build: (g) => g.mm('d', g.t('ws')),
    },
  };
}
/** A_i @ w (A_i [m, k], or A_i^T for A_i [k, m]): separate, or [A_1; ...] @ w sliced by rows. */
function sharedB(name: string, m: number, w: number[], n: number, transA = false): Case {
  const as = Array.from({ length: n }, (_, i) => `a${i}`);
  const k = w[0]!;
  return {
    name,
    inputs: { w, ...Object.fromEntries(as.map((a) => [a, transA ? [k, m] : [m, k]])) },
    out: [m, w[1]!],
    forms: [
      ['separate', (g) => as.map((a) => g.mm(transA ? g.t(a) : a, 'w'))],
      [
        'stacked rows',
        (g) => {
          const p = g.mm(transA ? g.t(g.concat(as, 1)) : g.concat(as, 0), 'w');
          return as.map((_, i) => g.slice(p, 0, i * m, m));
        },
      ],
    ],
    alone: {
      out: [n * m, w[1]!],
      inputs: { w, as: transA ? [k, n * m] : [n * m, k] },
      build: (g) => g.mm(transA ? g.t('as') : 'as', 'w'),
    },
  };
}

/** A_i @ W^T for A_i [m, k], W [c, k]: separate, or [A_1; ...] @ W^T sliced by rows. */
function sharedTransB(name: string, m: number, w: number[], n: number): Case {
  const as = Array.from({ length: n }, (_, i) => `a${i}`);
  return {
    name,
    inputs: { w, ...Object.fromEntries(as.map((a) => [a, [m, w[1]!]])) },
    out: [m, w[0]!],
    forms: [
      ['separate', (g) => as.map((a) => g.mm(a, g.t('w')))],
      [
        'stacked rows',
        (g) => {
          const p = g.mm(g.concat(as, 0), g.t('w'));
          return as.map((_, i) => g.slice(p, 0, i * m, m));
        },
      ],
    ],
    alone: {
      out: [n * m, w[0]!],
      inputs: { w, as: [n * m, w[1]!] },
      build: (g) => g.mm('as', g.t('w')),
    },
  };
}

const cases: Case[] = [
  sharedB('cnn x, xDot [64,1568] @ W [1568,128]', 64, [1568, 128], 2),
  sharedTransB('cnn dh, dhBar [64,128] @ W^T [1568,128]', 64, [1568, 128], 2),
  sharedA('cnn x [64,1568] @ W, V [1568,128]', [64, 1568], 128, 2),
  sharedA('cnn x^T @ dh, dhBar [64,128]', [64, 1568], 128, 2, true),
  sharedB('cnn x^T, xDot^T @ dh [64,128]', 1568, [64, 128], 2, true),
  sharedATransB('cnn dh [64,128] @ W^T, V^T', [64, 128], 1568, 2),
  sharedA('tr x [4096,64] @ 2 W [64,64]', [4096, 64], 64, 2),
  sharedA('tr x [4096,64] @ 6 W [64,64]', [4096, 64], 64, 6),
  sharedA('tr x^T [64,4096] @ 3 D [4096,64]', [4096, 64], 64, 3, true),
  sharedA('tr x^T [128,4096] @ 2 D [4096,64]', [4096, 128], 64, 2, true),
  sharedATransB('tr D [4096,64] @ W^T, V^T [64,64]', [4096, 64], 64, 2),
  sharedA('tr x [4096,128] @ 2 W [128,64]', [4096, 128], 64, 2),
  sharedA('tr x [4096,64] @ 2 W [64,128]', [4096, 64], 128, 2),
  sharedATransB('tr D [4096,64] @ W^T, V^T [128,64]', [4096, 64], 128, 2),
  sharedATransB('tr D [4096,128] @ W^T, V^T [64,128]', [4096, 128], 64, 2),
  sharedB('tr D1, D2 [4096,64] @ W [64,64]', 4096, [64, 64], 2),
  sharedB('tr D1^T, D2^T [64,4096] @ E [4096,64]', 64, [4096, 64], 2, true),
].filter((c) => c.name.startsWith(only));

function values(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    a[i] = x / 2147483648 - 0.5;
  }
  return a;
}
const median = (x: number[]) => [...x].sort((a, b) => a - b)[x.length >> 1]!;
console.log(`ONNX Runtime ${threads} thread(s), CPU medians of ${runs} runs:`);
for (const c of cases) {
  const feeds: Record<string, object> = {};
  Object.entries(c.inputs).forEach(([name, shape], k) => {
    feeds[name] = new Tensor(
      'float32',
      values(
        shape.reduce((a, b) => a * b),
        k + 1,
      ),
      shape,
    );
  });
  type Form = { build: (g: G) => string[]; out: number[]; inputs: Record<string, number[]> };
  const forms: [string, Form][] = c.forms.map(([name, build]) => [
    name,
    { build, out: c.out, inputs: c.inputs },
  ]);
  if (c.alone != null) {
    const alone = c.alone;
    forms.push(['product alone', { ...alone, build: (g) => [alone.build(g)] }]);
  }
  const sessions = forms.map(([, { build, out, inputs }]) => {
    const g = new G();
    const outs = build(g);
    outs.forEach((o, k) => g.nodes.push({ opType: 'Identity', inputs: [o], outputs: [`out${k}`] }));
    const graph: OnnxGraph = {
      nodes: g.nodes,
      inputs: Object.entries(inputs).map(([name, shape]) => ({ name, shape })),
      outputs: outs.map((_, k) => ({ name: `out${k}`, shape: out })),
      tensorInitializers: [...g.inits.values()],
    };
    const s = openSession(graph, threads);
    const results = outs.map(() => new Float32Array(out.reduce((a, b) => a * b)));
    const fetches: Record<string, object> = {};
    results.forEach((r, k) => (fetches[`out${k}`] = new Tensor('float32', r, out)));
    const own: Record<string, object> = {};
    for (const [name, shape] of Object.entries(inputs))
      own[name] =
        feeds[name] ??
        new Tensor(
          'float32',
          values(
            shape.reduce((a, b) => a * b),
            9,
          ),
          shape,
        );
    return { run: () => s.run(own, fetches, {}), outs: () => results };
  });
  const cpu = forms.map(() => [] as number[]);
  for (let r = 0; r < runs + 3; r++)
    sessions.forEach((s, k) => {
      const t = process.cpuUsage();
      s.run();
      const used = process.cpuUsage(t);
      if (r >= 3) cpu[k]!.push((used.user + used.system) / 1000);
    });
  const base = median(cpu[0]!);
  const ref = sessions[0]!.outs();
  console.log(`${c.name}:`);
  forms.forEach(([name], k) => {
    const same =
      name === 'product alone' ||
      sessions[k]!.outs().every((o, j) => o.every((v, i) => v === ref[j]![i]));
    console.log(
      `  ${name.padEnd(18)} ${median(cpu[k]!).toFixed(3)} ms (${(median(cpu[k]!) / base).toFixed(3)}), ${name === 'product alone' ? 'other outputs' : same ? 'same bits' : 'DIFFERENT bits'}`,
    );
  });
}
