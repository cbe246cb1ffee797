/**
 * Two sets of `step-graph-profile.ts --dump` files side by side: node time per run summed by ONNX
 * op and by TF.js kernel <- ONNX op, each set's files averaged (e.g. one and two threads, which
 * node kinds gain from the second thread).
 *
 *   npx tsx bench/speed/step-graph-profile.ts --model small-cnn --threads 1 --dump /tmp/t1.json
 *   npx tsx bench/speed/step-graph-profile.ts --model small-cnn --threads 2 --dump /tmp/t2.json
 *   npx tsx bench/speed/step-graph-dump-compare.ts --a /tmp/t1.json --b /tmp/t2.json --top 16
 *   (several files per side: --a /tmp/t1-r1.json,/tmp/t1-r2.json)
 */
import { readFileSync } from 'node:fs';
import { arg } from './args.js';

type DumpNode = { op: string; kernel?: string; ms: number };
const load = (list: string) =>
  list.split(',').map((f) => (JSON.parse(readFileSync(f, 'utf8')) as { nodes: DumpNode[] }).nodes);
const [a, b] = [load(arg('a', '')), load(arg('b', ''))];
const top = Number(arg('top', '16'));
const sum = (sets: DumpNode[][], keyOf: (n: DumpNode) => string) => {
  const m = new Map<string, number>();
  for (const nodes of sets)
    for (const n of nodes) m.set(keyOf(n), (m.get(keyOf(n)) ?? 0) + n.ms / sets.length);
  return m;
};
const views: [string, (n: DumpNode) => string][] = [
  ['by ONNX op', (n) => n.op],
  ['by TF.js kernel <- ONNX op', (n) => `${n.kernel ?? '-'} <- ${n.op}`],
];
for (const [title, keyOf] of views) {
  const [sa, sb] = [sum(a, keyOf), sum(b, keyOf)];
  const both = (k: string) => (sa.get(k) ?? 0) + (sb.get(k) ?? 0);
  const keys = [...new Set([...sa.keys(), ...sb.keys()])].sort((x, y) => both(y) - both(x));
  const total = (m: Map<string, number>) => [...m.values()].reduce((p, q) => p + q, 0);
  console.log(
    `${title}: ms per run, A ${total(sa).toFixed(1)}, B ${total(sb).toFixed(1)}, B / A ${(total(sb) / total(sa)).toFixed(2)}`,
  );
  for (const k of keys.slice(0, top)) {
    const [x, y] = [sa.get(k) ?? 0, sb.get(k) ?? 0];
    console.log(
      `  ${x.toFixed(1).padStart(7)} ${y.toFixed(1).padStart(7)}  ${(y / x).toFixed(2).padStart(5)}  ${k}`,
    );
  }
}
