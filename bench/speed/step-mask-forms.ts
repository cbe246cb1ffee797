/**
 * Exact ONNX forms of TF.js's Step (relu's mask, alpha 0) for step graphs (translate.ts), on
 * the small CNN's first activation [128, 28, 28, 16] with special values (+-NaN, a NaN with a
 * payload, +-Infinity, +-0, +-denormals) spread through it: for each form, Step alone against
 * TF.js's kernel bit for bit (NaN payloads counted apart), and Step + its Mul with dy timed
 * alternately (process CPU time, median).
 *
 *   npx tsx bench/speed/step-mask-forms.ts --runs 22 [--shape 128,28,28,16]
 */
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/index.js';
import { record } from '../../src/native/step-graph/capture.js';
import { buildStepGraph } from '../../src/native/step-graph/build.js';
import { TRANSLATIONS, type TranslationContext } from '../../src/native/step-graph/translate.js';
import type { OnnxAttribute } from '../../src/native/onnx-model.js';
import { openBuiltGraph } from '../../test/native/step-graph/helpers.js';
import { arg } from './args.js';

await useBackend('cpu');
tf.env().set('IS_TEST', false);
const runs = Number(arg('runs', '22'));
const shape = arg('shape', '128,28,28,16').split(',').map(Number);
type Rule = (ctx: TranslationContext) => void;
const toFloat: Record<string, OnnxAttribute> = { to: { kind: 'int', value: 1 } };

const FORMS: Record<string, Rule> = {
  /** translate.ts's Step before: Greater, Where, IsNaN, Where. */
  where: (ctx) => {
    const x = ctx.input('x');
    const [gt, stepped, nan] = [ctx.temp(), ctx.temp(), ctx.temp()];
    ctx.node('Greater', [x, ctx.scalar(0, 'float32')], [gt]);
    ctx.node('Where', [gt, ctx.scalar(1, 'float32'), ctx.scalar(0, 'float32')], [stepped]);
    ctx.node('IsNaN', [x], [nan]);
    ctx.node('Where', [nan, x, stepped], [ctx.output()]);
  },
  /** translate.ts's Step now: Cast(x > 0) / Cast(x == x). */
  div: TRANSLATIONS.Step!,
  castWhere: (ctx) => {
    const x = ctx.input('x');
    const [gt, mask, nan] = [ctx.temp(), ctx.temp(), ctx.temp()];
    ctx.node('Greater', [x, ctx.scalar(0, 'float32')], [gt]);
    ctx.node('Cast', [gt], [mask], toFloat);
    ctx.node('IsNaN', [x], [nan]);
    ctx.node('Where', [nan, x, mask], [ctx.output()]);
  },
  /** Exact only while ONNX Runtime's Relu and Sign keep NaN (an implementation detail). */
  signRelu: (ctx) => {
    const r = ctx.temp();
    ctx.node('Relu', [ctx.input('x')], [r]);
    ctx.node('Sign', [r], [ctx.output()]);
  },
};

const SPECIAL_BITS = [
  0x7fc00000, 0xffc00000, 0x7fc00001, 0x7f800000, 0xff800000, 0, 0x80000000, 1, 0x80000001,
];
const values = tf.tidy(() => tf.randomNormal(shape, 0, 1, 'float32', 1).dataSync() as Float32Array);
const bits = new Uint32Array(values.buffer);
SPECIAL_BITS.forEach((b, k) => {
  for (let i = k; i < bits.length; i += 97) bits[i] = b;
});
const x = tf.tensor(values, shape);
const dy = tf.randomNormal(shape, 0, 1, 'float32', 2);
const want = tf.step(x);
const wantValues = want.dataSync() as Float32Array;
const wantBits = new Uint32Array(wantValues.buffer, wantValues.byteOffset, wantValues.length);

const table = TRANSLATIONS as Record<string, Rule>;
const saved = table.Step!;
const timed: { name: string; graph: ReturnType<typeof openBuiltGraph>; cpu: number[] }[] = [];
for (const [name, form] of Object.entries(FORMS)) {
  table.Step = form;
  const alone = record(() => tf.step(x));
  const withMul = record(() => tf.mul(dy, tf.step(x)));
  table.Step = saved;
  const stepGraph = openBuiltGraph(
    buildStepGraph(alone.recording, [{ ref: alone.refOf(alone.result)!, shape }]),
    alone.recording,
  );
  const got = stepGraph.run()[0]!;
  const gotBits = new Uint32Array(got.buffer, got.byteOffset, got.length);
  let differ = 0;
  let nanPayloads = 0;
  for (let i = 0; i < got.length; i++) {
    if (gotBits[i] === wantBits[i]) continue;
    if (Number.isNaN(got[i]!) && Number.isNaN(wantValues[i]!)) nanPayloads++;
    else differ++;
  }
  stepGraph.dispose();
  console.log(`${name}: ${differ} values differ from TF.js's, ${nanPayloads} NaN payloads`);
  const built = buildStepGraph(withMul.recording, [{ ref: withMul.refOf(withMul.result)!, shape }]);
  timed.push({ name, graph: openBuiltGraph(built, withMul.recording), cpu: [] });
  tf.dispose([alone.result, withMul.result]);
}
for (let r = 0; r < runs + 2; r++) {
  for (const t of timed) {
    const c = process.cpuUsage();
    t.graph.run();
    const used = process.cpuUsage(c);
    if (r >= 2) t.cpu.push((used.user + used.system) / 1000);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const t of timed) {
  console.log(`${t.name}: Step + Mul ${median(t.cpu).toFixed(2)} ms CPU (median of ${runs})`);
  t.graph.dispose();
}
tf.dispose([x, dy, want]);
