/**
 * The small CNN's second conv's filter gradients in an AdaHessian step graph, alone: the
 * gradient G = corr(x, dy) and the sweep's tangent S = corr(xdot, dy) + corr(x, dydot), written
 * several ways as one hand-built graph each, timed alternately (ONNX Runtime, one thread, process
 * CPU medians); each form's largest difference from the first (relative to the largest value).
 *
 *   npx tsx bench/speed/filter-gradient-pairs.ts --runs 40 [--batch 64]
 */
import type { OnnxGraph, OnnxNode } from '../../src/native/onnx-model.js';
import { arg } from './args.js';
import { openSession, Tensor } from './ort-session.js';

const runs = Number(arg('runs', '40'));
const batch = Number(arg('batch', '64'));
const [h, w, cin, cout] = [14, 14, 16, 32];
const rows = batch * h * w;
const NCHWC = 'com.microsoft.nchwc';

type Init = NonNullable<OnnxGraph['tensorInitializers']>[number];
class G {
  nodes: OnnxNode[] = [];
  inits = new Map<string, Init>();
  n = 0;
  t = () => `t${this.n++}`;
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
  op(opType: string, inputs: string[], attrs?: OnnxNode['attributes'], domain?: string): string {
    const out = this.t();
    this.nodes.push({
      opType,
      inputs,
      outputs: [out],
      ...(attrs ? { attributes: attrs } : {}),
      ...(domain ? { domain } : {}),
    });
    return out;
  }
  /** [rows, c] as [c, rows] by NCHWc reorders (translate-conv.ts's conv2DBackpropFilterTransposedOnce). */
  transposeRows(d: string, c: number, r = rows): string {
    const d4 = this.op('Reshape', [d, this.i64([1, 1, r, c])]);
    const b = this.op('ReorderInput', [d4], { channels_last: { kind: 'int', value: 1 } }, NCHWC);
    const o = this.op(
      'ReorderOutput',
      [b],
      { channels: { kind: 'int', value: c }, channels_last: { kind: 'int', value: 0 } },
      NCHWC,
    );
    return this.op('Reshape', [o, this.i64([c, r])]);
  }
  pad(x: string): string {
    return this.op('Pad', [x, this.i64([0, 1, 1, 0, 0, 1, 1, 0])]);
  }
  /** The 9 taps of a padded NHWC image, each [1, n*h*w, c]. */
  taps(xp: string, n: number, c: number): string[] {
    const out: string[] = [];
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++) {
        const s = this.op('Slice', [
          xp,
          this.i64([i, j]),
          this.i64([i + h, j + w]),
          this.i64([1, 2]),
        ]);
        out.push(this.op('Reshape', [s, this.i64([1, n * h * w, c])]));
      }
    return out;
  }
  concat(xs: string[], axis: number): string {
    return this.op('Concat', xs, { axis: { kind: 'int', value: axis } });
  }
  graph(outs: Record<string, string>, outShape: number[]): OnnxGraph {
    for (const [name, from] of Object.entries(outs))
      this.nodes.push({ opType: 'Identity', inputs: [from], outputs: [name] });
    return {
      nodes: this.nodes,
      inputs: [
        { name: 'x', shape: [batch, h, w, cin] },
        { name: 'xd', shape: [batch, h, w, cin] },
        { name: 'dy', shape: [batch, h, w, cout] },
        { name: 'dyd', shape: [batch, h, w, cout] },
      ],
      outputs: Object.keys(outs).map((name) => ({ name, shape: outShape })),
      tensorInitializers: [...this.inits.values()],
    };
  }
}

const OUT = [9, cout, cin];
/** The step graph's form today: three per-tap groups (x's taps shared as CSE shares them). */
function current(shareDy: boolean): OnnxGraph {
  const g = new G();
  const xt = g.taps(g.pad('x'), batch, cin);
  const xdt = g.taps(g.pad('xd'), batch, cin);
  const dyr = g.op('Reshape', ['dy', g.i64([rows, cout])]);
  const dt = g.transposeRows(dyr, cout);
  const dt2 = shareDy ? dt : g.transposeRows(g.op('Reshape', ['dy', g.i64([rows, cout])]), cout);
  const ddt = g.transposeRows(g.op('Reshape', ['dyd', g.i64([rows, cout])]), cout);
  const G_ = g.concat(
    xt.map((t) => g.op('MatMul', [dt, t])),
    0,
  );
  const s1 = g.concat(
    xdt.map((t) => g.op('MatMul', [dt2, t])),
    0,
  );
  const s2 = g.concat(
    xt.map((t) => g.op('MatMul', [ddt, t])),
    0,
  );
  return g.graph(
    {
      G: g.op('Reshape', [G_, g.i64(OUT)]),
      S: g.op('Add', [g.op('Reshape', [s1, g.i64(OUT)]), g.op('Reshape', [s2, g.i64(OUT)])]),
    },
    OUT,
  );
}
/** Gradient only (what the first-order graph has). */
function gradientOnly(): OnnxGraph {
  const g = new G();
  const xt = g.taps(g.pad('x'), batch, cin);
  const dt = g.transposeRows(g.op('Reshape', ['dy', g.i64([rows, cout])]), cout);
  const G_ = g.concat(
    xt.map((t) => g.op('MatMul', [dt, t])),
    0,
  );
  return g.graph({ G: g.op('Reshape', [G_, g.i64(OUT)]) }, OUT);
}
/** [dy | dyd]^T times [x | xd]'s taps: the four blocks, three used. */
function bothChannels(): OnnxGraph {
  const g = new G();
  const t2 = g.taps(g.pad(g.concat(['x', 'xd'], 3)), batch, 2 * cin);
  const d2 = g.op('Reshape', [g.concat(['dy', 'dyd'], 3), g.i64([rows, 2 * cout])]);
  const dt2 = g.transposeRows(d2, 2 * cout);
  const p = g.concat(
    t2.map((t) => g.op('MatMul', [dt2, t])),
    0,
  ); // [9, 64, 32]
  const block = (r0: number, c0: number) =>
    g.op('Slice', [p, g.i64([r0, c0]), g.i64([r0 + cout, c0 + cin]), g.i64([1, 2])]);
  return g.graph({ G: block(0, 0), S: g.op('Add', [block(0, cin), block(cout, 0)]) }, OUT);
}
/** [dy | dyd]^T times x's taps (G and corr(x, dyd) in one product), dy^T times xd's. */
function stackedRows(): OnnxGraph {
  const g = new G();
  const xt = g.taps(g.pad('x'), batch, cin);
  const xdt = g.taps(g.pad('xd'), batch, cin);
  const dt = g.transposeRows(g.op('Reshape', ['dy', g.i64([rows, cout])]), cout);
  const d2 = g.op('Reshape', [g.concat(['dy', 'dyd'], 3), g.i64([rows, 2 * cout])]);
  const dt2 = g.transposeRows(d2, 2 * cout);
  const p = g.concat(
    xt.map((t) => g.op('MatMul', [dt2, t])),
    0,
  ); // [9, 64, 16]
  const s1 = g.concat(
    xdt.map((t) => g.op('MatMul', [dt, t])),
    0,
  );
  const half = (r0: number) => g.op('Slice', [p, g.i64([r0]), g.i64([r0 + cout]), g.i64([1])]);
  return g.graph(
    { G: half(0), S: g.op('Add', [g.op('Reshape', [s1, g.i64(OUT)]), half(cout)]) },
    OUT,
  );
}
/** As stackedRows, [dy | dyd]^T as the Concat of the two transposes (dy's shared with S1's). */
function stackedTransposes(): OnnxGraph {
  const g = new G();
  const xt = g.taps(g.pad('x'), batch, cin);
  const xdt = g.taps(g.pad('xd'), batch, cin);
  const dt = g.transposeRows(g.op('Reshape', ['dy', g.i64([rows, cout])]), cout);
  const ddt = g.transposeRows(g.op('Reshape', ['dyd', g.i64([rows, cout])]), cout);
  const dt2 = g.concat([dt, ddt], 0);
  const p = g.concat(
    xt.map((t) => g.op('MatMul', [dt2, t])),
    0,
  ); // [9, 64, 16]
  const s1 = g.concat(
    xdt.map((t) => g.op('MatMul', [dt, t])),
    0,
  );
  const half = (r0: number) => g.op('Slice', [p, g.i64([r0]), g.i64([r0 + cout]), g.i64([1])]);
  return g.graph(
    { G: half(0), S: g.op('Add', [g.op('Reshape', [s1, g.i64(OUT)]), half(cout)]) },
    OUT,
  );
}
/** As stackedTransposes, dyd^T by one Transpose (read by the Concat alone: no MatMul fuses it). */
function stackedPlainTranspose(): OnnxGraph {
  const g = new G();
  const xt = g.taps(g.pad('x'), batch, cin);
  const xdt = g.taps(g.pad('xd'), batch, cin);
  const dt = g.transposeRows(g.op('Reshape', ['dy', g.i64([rows, cout])]), cout);
  const ddt = g.op('Transpose', [g.op('Reshape', ['dyd', g.i64([rows, cout])])], {
    perm: { kind: 'ints', value: [1, 0] },
  });
  const dt2 = g.concat([dt, ddt], 0);
  const p = g.concat(
    xt.map((t) => g.op('MatMul', [dt2, t])),
    0,
  );
  const s1 = g.concat(
    xdt.map((t) => g.op('MatMul', [dt, t])),
    0,
  );
  const half = (r0: number) => g.op('Slice', [p, g.i64([r0]), g.i64([r0 + cout]), g.i64([1])]);
  return g.graph(
    { G: half(0), S: g.op('Add', [g.op('Reshape', [s1, g.i64(OUT)]), half(cout)]) },
    OUT,
  );
}
/**
 * As stackedTransposes, K in chunks of `m` images: per chunk, the 9 taps' products read the
 * chunk of [dy | dyd]^T while it is in cache (the taps interleaved by chunk, one Concat), then
 * a ReduceSum over the chunks (another rounding).
 */
function chunked(m: number): OnnxGraph {
  const g = new G();
  const c = batch / m;
  const kc = m * h * w;
  const chunkTaps = (x: string): string => {
    const xp = g.op('Reshape', [g.pad(x), g.i64([c, m, h + 2, w + 2, cin])]);
    const taps: string[] = [];
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++) {
        const s = g.op('Slice', [xp, g.i64([i, j]), g.i64([i + h, j + w]), g.i64([2, 3])]);
        taps.push(g.op('Reshape', [s, g.i64([c, 1, kc, cin])]));
      }
    return g.concat(taps, 1); // [c, 9, kc, cin]
  };
  const chunkT = (d: string, ch: number): string => {
    const d4 = g.op('Reshape', [d, g.i64([c, 1, kc, ch])]);
    const b = g.op('ReorderInput', [d4], { channels_last: { kind: 'int', value: 1 } }, NCHWC);
    const o = g.op(
      'ReorderOutput',
      [b],
      { channels: { kind: 'int', value: ch }, channels_last: { kind: 'int', value: 0 } },
      NCHWC,
    );
    return g.op('Reshape', [o, g.i64([c, 1, ch, kc])]);
  };
  const dt = chunkT('dy', cout);
  const a2 = g.concat([dt, chunkT('dyd', cout)], 2); // [c, 1, 64, kc]
  const sum = (x: string) =>
    g.op('ReduceSum', [x, g.i64([0])], { keepdims: { kind: 'int', value: 0 } });
  const p = sum(g.op('MatMul', [a2, chunkTaps('x')])); // [9, 64, 16]
  const s1 = sum(g.op('MatMul', [dt, chunkTaps('xd')])); // [9, 32, 16]
  const half = (r0: number) => g.op('Slice', [p, g.i64([r0]), g.i64([r0 + cout]), g.i64([1])]);
  return g.graph({ G: half(0), S: g.op('Add', [s1, half(cout)]) }, OUT);
}
/** [dy | dyd]^T times both x's and xd's taps (one transpose; a quarter of the products unused). */
function stackedBoth(): OnnxGraph {
  const g = new G();
  const xt = g.taps(g.pad('x'), batch, cin);
  const xdt = g.taps(g.pad('xd'), batch, cin);
  const d2 = g.op('Reshape', [g.concat(['dy', 'dyd'], 3), g.i64([rows, 2 * cout])]);
  const dt2 = g.transposeRows(d2, 2 * cout);
  const p = g.concat(
    xt.map((t) => g.op('MatMul', [dt2, t])),
    0,
  ); // [9, 64, 16]
  const q = g.concat(
    xdt.map((t) => g.op('MatMul', [dt2, t])),
    0,
  );
  const half = (x: string, r0: number) =>
    g.op('Slice', [x, g.i64([r0]), g.i64([r0 + cout]), g.i64([1])]);
  return g.graph({ G: half(p, 0), S: g.op('Add', [half(q, 0), half(p, cout)]) }, OUT);
}
/** S as one product per tap over K = 2 rows: [dy; dyd]^T times [xd; x]'s taps. */
function kConcat(): OnnxGraph {
  const g = new G();
  const xt = g.taps(g.pad('x'), batch, cin);
  const dt = g.transposeRows(g.op('Reshape', ['dy', g.i64([rows, cout])]), cout);
  const G_ = g.concat(
    xt.map((t) => g.op('MatMul', [dt, t])),
    0,
  );
  const tk = g.taps(g.pad(g.concat(['xd', 'x'], 0)), 2 * batch, cin);
  const dk = g.op('Reshape', [g.concat(['dy', 'dyd'], 0), g.i64([2 * rows, cout])]);
  const dkt = g.transposeRows(dk, cout, 2 * rows);
  const s = g.concat(
    tk.map((t) => g.op('MatMul', [dkt, t])),
    0,
  );
  return g.graph(
    { G: g.op('Reshape', [G_, g.i64(OUT)]), S: g.op('Reshape', [s, g.i64(OUT)]) },
    OUT,
  );
}

function values(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    a[i] = x / 2147483648 - 0.5;
  }
  return a;
}
const forms: [string, OnnxGraph][] = [
  ['current (dy reordered twice)', current(false)],
  ['current, dy reordered once', current(true)],
  ['[dy|dyd] x [x|xd] taps', bothChannels()],
  ['[dy|dyd] x x taps, dy x xd taps', stackedRows()],
  ['stacked, Concat of the transposes', stackedTransposes()],
  ['stacked, dyd by one Transpose', stackedPlainTranspose()],
  ['stacked, K in chunks of 4 images', chunked(4)],
  ['stacked, K in chunks of 8 images', chunked(8)],
  ['stacked, K in chunks of 16 images', chunked(16)],
  ['[dy|dyd] x x and xd taps', stackedBoth()],
  ['S over K = [dy;dyd] x [xd;x]', kConcat()],
  ['gradient only (first order)', gradientOnly()],
];
const feeds: Record<string, object> = {};
[
  ['x', cin],
  ['xd', cin],
  ['dy', cout],
  ['dyd', cout],
].forEach(([name, c], k) => {
  const shape = [batch, h, w, c as number];
  feeds[name as string] = new Tensor(
    'float32',
    values(
      shape.reduce((a, b) => a * b),
      k + 1,
    ),
    shape,
  );
});
const size = OUT.reduce((a, b) => a * b);
const sessions = forms.map(([, graph]) => {
  const s = openSession(graph);
  const outs = graph.outputs.map(() => new Float32Array(size));
  const fetches: Record<string, object> = {};
  graph.outputs.forEach((o, k) => (fetches[o.name] = new Tensor('float32', outs[k], OUT)));
  return { run: () => s.run(feeds, fetches, {}), outs };
});
const cpu = forms.map(() => [] as number[]);
for (let r = 0; r < runs + 3; r++)
  sessions.forEach((s, k) => {
    const c = process.cpuUsage();
    s.run();
    const used = process.cpuUsage(c);
    if (r >= 3) cpu[k]!.push((used.user + used.system) / 1000);
  });
const median = (x: number[]) => [...x].sort((a, b) => a - b)[x.length >> 1]!;
const ref = sessions[0]!.outs;
const base = median(cpu[0]!);
console.log(
  `batch ${batch}, x [${batch},${h},${w},${cin}] -> ${cout}, ONNX Runtime 1 thread, CPU medians of ${runs}:`,
);
forms.forEach(([name], k) => {
  const diffs = sessions[k]!.outs.map((o, j) => {
    const scale = ref[j]!.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    return o.reduce((m, v, i) => Math.max(m, Math.abs(v - ref[j]![i]!)), 0) / scale;
  });
  console.log(
    `  ${name.padEnd(34)} ${median(cpu[k]!).toFixed(2)} ms (${(median(cpu[k]!) / base).toFixed(3)}), diff ${diffs.map((d) => d.toExponential(1)).join(' ')}`,
  );
});

// The first conv (one input channel): G = P dy and S = P dyd with P the taps' patch matrix
// [9, rows] (translate-conv.ts's oneChannelPatches), two products or one of P and [dy | dyd].
{
  const r1 = batch * 28 * 28;
  const mk = (stacked: boolean): OnnxGraph => {
    const g = new G();
    const xp = g.op('Pad', ['x1', g.i64([0, 1, 1, 0, 0, 1, 1, 0])]);
    const rowsOf: string[] = [];
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++) {
        const s = g.op('Slice', [xp, g.i64([i, j]), g.i64([i + 28, j + 28]), g.i64([1, 2])]);
        rowsOf.push(g.op('Reshape', [s, g.i64([1, r1])]));
      }
    const p = g.concat(rowsOf, 0);
    const d = g.op('Reshape', ['d1', g.i64([r1, 16])]);
    const dd = g.op('Reshape', ['dd1', g.i64([r1, 16])]);
    let outs: Record<string, string>;
    if (stacked) {
      const both = g.op('MatMul', [p, g.concat([d, dd], 1)]);
      const half = (c0: number) => g.op('Slice', [both, g.i64([c0]), g.i64([c0 + 16]), g.i64([1])]);
      outs = { G: half(0), S: half(16) };
    } else outs = { G: g.op('MatMul', [p, d]), S: g.op('MatMul', [p, dd]) };
    const graph = g.graph(outs, [9, 16]);
    return {
      ...graph,
      inputs: [
        { name: 'x1', shape: [batch, 28, 28, 1] },
        { name: 'd1', shape: [batch, 28, 28, 16] },
        { name: 'dd1', shape: [batch, 28, 28, 16] },
      ],
    };
  };
  const f1: [string, OnnxGraph][] = [
    ['two products', mk(false)],
    ['one product of P and [dy | dyd]', mk(true)],
  ];
  const feeds1: Record<string, object> = {};
  [
    ['x1', 1],
    ['d1', 16],
    ['dd1', 16],
  ].forEach(([name, c], k) => {
    const shape = [batch, 28, 28, c as number];
    feeds1[name as string] = new Tensor(
      'float32',
      values(
        shape.reduce((a, b) => a * b),
        k + 1,
      ),
      shape,
    );
  });
  const s1 = f1.map(([, graph]) => {
    const s = openSession(graph);
    const outs = graph.outputs.map(() => new Float32Array(9 * 16));
    const fetches: Record<string, object> = {};
    graph.outputs.forEach((o, k) => (fetches[o.name] = new Tensor('float32', outs[k], [9, 16])));
    return { run: () => s.run(feeds1, fetches, {}), outs };
  });
  const c1 = f1.map(() => [] as number[]);
  for (let r = 0; r < runs + 3; r++)
    s1.forEach((s, k) => {
      const c = process.cpuUsage();
      s.run();
      const used = process.cpuUsage(c);
      if (r >= 3) c1[k]!.push((used.user + used.system) / 1000);
    });
  console.log(`first conv, x [${batch},28,28,1] -> 16:`);
  f1.forEach(([name], k) => {
    const same = s1[k]!.outs.every((o, j) => o.every((v, i) => v === s1[0]!.outs[j]![i]));
    console.log(
      `  ${name.padEnd(34)} ${median(c1[k]!).toFixed(2)} ms (${(median(c1[k]!) / median(c1[0]!)).toFixed(3)}), ${same ? 'same bits' : 'differs'}`,
    );
  });
}
