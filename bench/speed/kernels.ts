/**
 * Raw kernel speed in GFLOP/s, the two kernels of the speed issue, interleaved in one run:
 * matmul 512x1024 . 1024x1024 and a 3x3 conv (16 -> 32 channels, batch 32, 28x28, same),
 * on TF.js cpu, TF.js wasm, the native path (1 and 2 threads) and PyTorch (1 and 2 threads).
 *
 *   npx tsx bench/speed/kernels.ts [--rounds 5]
 */
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/index.js';
import { disableNativeKernels, enableNativeKernels } from '../../src/native/index.js';

tf.env().set('IS_TEST', false);
const roundsArg = process.argv.indexOf('--rounds');
const rounds = roundsArg >= 0 ? Number(process.argv[roundsArg + 1]) : 5;

const MATMUL_FLOP = 2 * 512 * 1024 * 1024;
const CONV_FLOP = 2 * 32 * 28 * 28 * 32 * 16 * 9;

interface Variant {
  name: string;
  backend: 'cpu' | 'wasm';
  threads: number | null;
}
const VARIANTS: Variant[] = [
  { name: 'tfjs cpu', backend: 'cpu', threads: null },
  { name: 'tfjs wasm', backend: 'wasm', threads: null },
  { name: 'native 1 thread', backend: 'cpu', threads: 1 },
  { name: 'native 2 threads', backend: 'cpu', threads: 2 },
];

function timeMs(f: () => tf.Tensor, reps: number): number {
  f().dispose();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) {
    const y = f();
    y.dataSync();
    y.dispose();
  }
  return (performance.now() - t0) / reps;
}

const results = new Map<string, number[]>();
const add = (k: string, v: number) => results.set(k, [...(results.get(k) ?? []), v]);

for (let round = 0; round < rounds; round++) {
  for (const v of VARIANTS) {
    await useBackend(v.backend);
    if (v.threads != null) enableNativeKernels({ threads: v.threads });
    const a = tf.randomUniform([512, 1024]);
    const b = tf.randomUniform([1024, 1024]);
    const x = tf.randomUniform([32, 28, 28, 16]) as tf.Tensor4D;
    const f = tf.randomUniform([3, 3, 16, 32]) as tf.Tensor4D;
    const slow = v.name.startsWith('tfjs');
    add(`${v.name}|matmul`, MATMUL_FLOP / timeMs(() => tf.matMul(a, b), slow ? 1 : 5) / 1e6);
    add(`${v.name}|conv`, CONV_FLOP / timeMs(() => tf.conv2d(x, f, 1, 'same'), slow ? 1 : 5) / 1e6);
    tf.dispose([a, b, x, f]);
    disableNativeKernels();
  }
  for (const threads of [1, 2]) {
    const py = `
import time, torch
torch.set_num_threads(${threads})
a, b = torch.rand(512, 1024), torch.rand(1024, 1024)
x, w = torch.rand(32, 16, 28, 28), torch.rand(32, 16, 3, 3)
def t(f, r=5):
    f(); t0 = time.perf_counter()
    for _ in range(r): f()
    return (time.perf_counter() - t0) / r * 1000
print(${MATMUL_FLOP} / t(lambda: a @ b) / 1e6, ${CONV_FLOP} / t(lambda: torch.nn.functional.conv2d(x, w, padding=1)) / 1e6)
`;
    const out = spawnSync('/usr/bin/python3', ['-c', py], { encoding: 'utf8' });
    if (out.status !== 0) {
      console.log(`PyTorch unavailable: ${out.stderr.split('\n').slice(-2).join(' ')}`);
      continue;
    }
    const [mm, conv] = out.stdout.trim().split(' ').map(Number);
    add(`pytorch ${threads} thread(s)|matmul`, mm!);
    add(`pytorch ${threads} thread(s)|conv`, conv!);
  }
  process.stderr.write(`round ${round + 1}/${rounds}\n`);
}

const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;
console.log(`GFLOP/s, median of ${rounds} interleaved rounds`);
console.log('variant | matmul 512x1024x1024 | conv 3x3 16->32 32x28x28');
const names = [...new Set([...results.keys()].map((k) => k.split('|')[0]!))];
for (const n of names) {
  console.log(
    `${n} | ${median(results.get(`${n}|matmul`)!).toFixed(1)} | ${median(results.get(`${n}|conv`)!).toFixed(1)}`,
  );
}
