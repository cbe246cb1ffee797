/**
 * The small CNN's two pairs of added convolutions in its AdaHessian sweep (conv-pairs.ts), alone:
 * 'fwd' conv(x2, v2) + conv(dxBar2, W2) + the bias tangent (16 -> 32 channels), 'bwd' the two
 * backprop inputs (32 -> 16 channels), 3x3 'same', NHWC in and out as in the step graph. Three
 * forms as one hand-built graph each, timed alternately (ONNX Runtime, one thread, process CPU
 * medians), each form's largest difference from the first (relative to the largest value):
 *   plain   two NCHWc Convs, two ReorderOutputs, Add (and the bias Add): before conv-pairs.ts;
 *   sum     the second Conv accumulating onto the first's blocked output (Sum), one ReorderOutput:
 *           what conv-pairs.ts writes;
 *   concat  the blocked inputs concatenated on the channel axis, the filters stacked on their
 *           input-channel blocks, one Conv: the other way to add two convolutions.
 *
 *   npx tsx bench/speed/conv-pair-forms.ts --runs 200 [--batch 64]
 */
import type { OnnxGraph, OnnxNode } from '../../src/native/onnx-model.js';
import { nchwcBlockSize } from '../../src/native/step-graph/translate-conv.js';
import { arg } from './args.js';
import { openSession, Tensor } from './ort-session.js';

const runs = Number(arg('runs', '200'));
const batch = Number(arg('batch', '64'));
const [h, w] = [14, 14];
const NCHWC = 'com.microsoft.nchwc';
const block = nchwcBlockSize();
if (block === 0) throw new Error('no NCHWc kernels in this ONNX Runtime');

const ints = (value: number[]) => ({ kind: 'ints' as const, value });
const int = (value: number) => ({ kind: 'int' as const, value });
const convAttributes = {
  pads: ints([1, 1, 1, 1]),
  strides: ints([1, 1]),
  dilations: ints([1, 1]),
  kernel_shape: ints([3, 3]),
};

function graph(form: string, cin: number, cout: number, bias: boolean): OnnxGraph {
  const nodes: OnnxNode[] = ['a', 'b'].map((x) => ({
    opType: 'ReorderInput',
    domain: NCHWC,
    inputs: [x],
    outputs: [`${x}Blocked`],
    attributes: { channels_last: int(1) },
  }));
  const conv = (inputs: string[], out: string) =>
    nodes.push({
      opType: 'Conv',
      domain: NCHWC,
      inputs,
      outputs: [out],
      attributes: convAttributes,
    });
  const reorder = (x: string, out: string) =>
    nodes.push({
      opType: 'ReorderOutput',
      domain: NCHWC,
      inputs: [x],
      outputs: [out],
      attributes: { channels: int(cout), channels_last: int(1) },
    });
  if (form === 'plain') {
    conv(['aBlocked', 'wa'], 'ya');
    conv(['bBlocked', 'wb'], 'yb');
    reorder('ya', 'za');
    reorder('yb', 'zb');
    nodes.push({ opType: 'Add', inputs: ['za', 'zb'], outputs: [bias ? 'sum' : 'out'] });
    if (bias) nodes.push({ opType: 'Add', inputs: ['sum', 'bias4'], outputs: ['out'] });
  } else if (form === 'sum') {
    conv(['aBlocked', 'wa'], 'ya');
    conv(['bBlocked', 'wb', bias ? 'bias' : '', 'ya'], 'yb');
    reorder('yb', 'out');
  } else {
    nodes.push({
      opType: 'Concat',
      inputs: ['aBlocked', 'bBlocked'],
      outputs: ['both'],
      attributes: { axis: int(1) },
    });
    conv(bias ? ['both', 'wBoth', 'bias'] : ['both', 'wBoth'], 'y');
    reorder('y', 'out');
  }
  const image = [batch, h, w, cin];
  const filter = [cout, cin, 3, 3];
  return {
    nodes,
    inputs: [
      { name: 'a', shape: image },
      { name: 'b', shape: image },
      ...(form === 'concat'
        ? [{ name: 'wBoth', shape: [cout, 2 * cin, 3, 3] }]
        : [
            { name: 'wa', shape: filter },
            { name: 'wb', shape: filter },
          ]),
      ...(bias
        ? [
            {
              name: form === 'plain' ? 'bias4' : 'bias',
              shape: form === 'plain' ? [1, 1, 1, cout] : [cout],
            },
          ]
        : []),
    ],
    outputs: [{ name: 'out', shape: [batch, h, w, cout] }],
  };
}

const random = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

for (const [pair, cin, cout, bias] of [
  ['fwd', 16, 32, true],
  ['bwd', 32, 16, false],
] as const) {
  const size = batch * h * w;
  const filterSize = cout * cin * 9;
  const data: Record<string, Float32Array> = {
    a: random(size * cin),
    b: random(size * cin),
    wa: random(filterSize),
    wb: random(filterSize),
    bias: random(cout),
  };
  data['bias4'] = data['bias']!;
  // MLAS's blocked filter [O/B, I/B, kh, kw, Bi, Bo]: per output block, wa's input blocks, then wb's.
  const perOutputBlock = filterSize / (cout / block);
  const both = new Float32Array(2 * filterSize);
  for (let o = 0; o < cout / block; o++) {
    both.set(
      data['wa']!.subarray(o * perOutputBlock, (o + 1) * perOutputBlock),
      2 * o * perOutputBlock,
    );
    both.set(
      data['wb']!.subarray(o * perOutputBlock, (o + 1) * perOutputBlock),
      (2 * o + 1) * perOutputBlock,
    );
  }
  data['wBoth'] = both;
  const forms = ['plain', 'sum', 'concat'].map((form) => {
    const g = graph(form, cin, cout, bias);
    const session = openSession(g);
    const feeds = Object.fromEntries(
      g.inputs.map((i) => [i.name, new Tensor('float32', data[i.name]!, [...i.shape])]),
    );
    const out = new Float32Array(size * cout);
    const fetches = { out: new Tensor('float32', out, [batch, h, w, cout]) };
    return { form, out, run: () => session.run(feeds, fetches, {}), cpu: [] as number[] };
  });
  for (let r = 0; r < runs + 3; r++) {
    for (const f of forms) {
      const c = process.cpuUsage();
      f.run();
      const used = process.cpuUsage(c);
      if (r >= 3) f.cpu.push((used.user + used.system) / 1000);
    }
  }
  const base = median(forms[0]!.cpu);
  const scale = forms[0]!.out.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  console.log(
    `${pair} (${cin} -> ${cout} channels, batch ${batch}): ` +
      forms
        .map((f) => {
          const diff = f.out.reduce((m, v, i) => Math.max(m, Math.abs(v - forms[0]!.out[i]!)), 0);
          return `${f.form} ${median(f.cpu).toFixed(2)} ms (${(median(f.cpu) / base).toFixed(3)}, diff ${(diff / scale).toExponential(1)})`;
        })
        .join(', '),
  );
}
