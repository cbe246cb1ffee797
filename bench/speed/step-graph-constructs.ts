/**
 * Where the char transformer's AdaHessian step graph spends its node time, by model construct
 * (layer norm, GELU, softmax, cross-entropy, ...) rather than by TF.js kernel: reads the dump
 * of `step-graph-profile.ts --dump` and sorts every timed ONNX node by its output's shape,
 * which in this model says which construct made it (the forward's, the gradient's and the
 * sweep's passes over a value have the value's shape):
 *
 *   [1, B, T, d]           layer norm (tf.layers' batch norm runs on a 4-D view)
 *   [B, T, ff], [B*T, ff]  the feed-forward hidden layer (bias, GELU)
 *   [B, H, T, T]           attention weights (scale, mask, softmax)
 *   [B, T, V], [B*T, V]    logits and the cross-entropy
 *   [B, T, H, dh], [B, H, T, dh], [B, H, dh, T]  attention heads (split, merge)
 *   [B, T, d], [B*T, d]    the residual stream (residual adds, biases, layer norms' moments)
 *   [B, T, 1] and other small shapes  row statistics and the rest
 * Matrix products (MatMul, FusedMatMul, Gemm) are counted apart: dense layers and attention.
 * Why: a hand-written rewrite replaces one construct's forward, gradient and sweep at once;
 * this says what each could buy at most. Then the products' arithmetic by phase (2 M N K per
 * product, K read from ONNX Runtime's input shapes, which are before any transpose it folded
 * in) and its rate per ms of node time: what the products could gain at most from running
 * faster, against what the forward's reach.
 *
 *   npx tsx bench/speed/step-graph-profile.ts --runs 6 --dump /tmp/dump.json
 *   npx tsx bench/speed/step-graph-constructs.ts --dump /tmp/dump.json   # defaults: B 64, T 64, d 64
 *   npx tsx bench/speed/step-graph-constructs.ts --dump /tmp/dump.json --batch 16 --context 32
 */
import { readFileSync } from 'node:fs';
import { arg } from './args.js';

const dumpPath = arg('dump', '');
if (!dumpPath) throw new Error('--dump: the file written by step-graph-profile.ts --dump');
const [B, T, d, ff, V, H] = ['batch', 'context', 'd', 'ff', 'vocab', 'heads'].map((k) =>
  Number(arg(k, { batch: '64', context: '64', d: '64', ff: '128', vocab: '96', heads: '2' }[k]!)),
) as [number, number, number, number, number, number];
const dh = d / H;

interface DumpNode {
  op: string;
  phase: string;
  ms: number;
  args?: {
    op_name?: string;
    input_type_shape?: Record<string, number[]>[];
    output_type_shape?: Record<string, number[]>[];
  };
}
const nodes = (JSON.parse(readFileSync(dumpPath, 'utf8')) as { nodes: DumpNode[] }).nodes;

const same = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);
const PRODUCTS = new Set(['MatMul', 'FusedMatMul', 'Gemm']);
function construct(n: DumpNode): string {
  const shape = Object.values(n.args?.output_type_shape?.[0] ?? {})[0] ?? [];
  const is = (...shapes: number[][]) => shapes.some((s) => same(shape, s));
  if (PRODUCTS.has(n.op)) return shape.length === 4 ? 'products: attention' : 'products: dense';
  if (is([1, B, T, d])) return 'layer norm (4-D view)';
  if (is([B, T, ff], [B * T, ff], [1, B * T, ff])) return 'feed-forward hidden (bias, GELU)';
  if (is([B, H, T, T])) return 'attention weights (scale, mask, softmax)';
  if (is([B, T, V], [B * T, V], [1, B * T, V])) return 'logits, cross-entropy';
  if (is([B, T, H, dh], [B, H, T, dh], [B, H, dh, T])) return 'attention heads (split, merge)';
  if (is([B, T, d], [B * T, d], [1, B * T, d])) return 'residual stream, biases, moments';
  if (shape.reduce((a, b) => a * b, 1) <= B * T * H) return 'row statistics, small';
  return `other [${shape.join(', ')}]`;
}

const phases = ['forward', 'gradient', 'sweep'];
const table = new Map<string, { ms: Record<string, number>; nodes: number }>();
let total = 0;
for (const n of nodes) {
  if (n.args == null || !phases.includes(n.phase)) continue; // untimed (folded away) or outputs
  const key = construct(n);
  const row = table.get(key) ?? { ms: { forward: 0, gradient: 0, sweep: 0 }, nodes: 0 };
  row.ms[n.phase]! += n.ms;
  row.nodes++;
  table.set(key, row);
  total += n.ms;
}
console.log(
  `B ${B}, T ${T}, d ${d}, ff ${ff}, vocab ${V}, heads ${H}: ${total.toFixed(1)} ms of node time per run (profiler on)`,
);
console.log('construct | nodes | forward | gradient | sweep | all | share');
console.log('---|---:|---:|---:|---:|---:|---:');
const sum = (r: { ms: Record<string, number> }) => phases.reduce((a, p) => a + r.ms[p]!, 0);
for (const [key, row] of [...table].sort((a, b) => sum(b[1]) - sum(a[1]))) {
  console.log(
    `${key} | ${row.nodes} | ${phases.map((p) => row.ms[p]!.toFixed(1)).join(' | ')} | ${sum(row).toFixed(1)} | ${((100 * sum(row)) / total).toFixed(1)} %`,
  );
}

// The products' arithmetic. A FusedMatMul's inputs are as ONNX Runtime got them, before the
// transposes it folded in, so K is A's dimension that is not the output's M.
const flops: Record<string, number> = { forward: 0, gradient: 0, sweep: 0 };
const productMs: Record<string, number> = { forward: 0, gradient: 0, sweep: 0 };
let folded = 0;
let products = 0;
for (const n of nodes) {
  if (n.args == null || !phases.includes(n.phase) || !PRODUCTS.has(n.args.op_name ?? '')) continue;
  const [a] = (n.args.input_type_shape ?? []).map((t) => Object.values(t)[0] ?? []);
  const out = Object.values(n.args.output_type_shape?.[0] ?? {})[0] ?? [];
  if (a == null || a.length < 2 || out.length < 2) continue;
  const [m, cols] = [out.at(-2)!, out.at(-1)!];
  const k = a.at(-2) === m ? a.at(-1)! : a.at(-2)!;
  flops[n.phase]! += 2 * out.slice(0, -2).reduce((x, y) => x * y, 1) * m * cols * k;
  productMs[n.phase]! += n.ms;
  products++;
  if (n.args.op_name === 'FusedMatMul') folded++;
}
console.log(
  `products: ${phases.map((p) => `${p} ${(flops[p]! / 1e9).toFixed(3)} GFLOP in ${productMs[p]!.toFixed(1)} ms (${(flops[p]! / productMs[p]! / 1e6).toFixed(1)} GFLOP/s)`).join(', ')}; ` +
    `${folded} of ${products} run by ONNX Runtime as FusedMatMul (a transpose folded in)`,
);
