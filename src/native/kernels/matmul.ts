/**
 * BatchMatMul and _FusedMatMul as ONNX graphs. When every batch dimension is 1 (what
 * tf.matMul and tf.fused.matMul send for 2-D operands) the product runs as one Gemm, whose
 * transpose flags and bias MLAS handles without copies; otherwise Transpose + MatMul
 * (numpy-style batch broadcasting, as in TF.js) + Add.
 */
import * as tf from '@tensorflow/tfjs';
import type { OnnxNode } from '../onnx-model.js';
import { planActivation } from './activation.js';
import { allFloat32, int, ints, type NativeKernel, type NativePlan } from './types.js';

export const batchMatMulKernel: NativeKernel = {
  kernelName: 'BatchMatMul',
  plan: (inputs, attrs) => planMatMul(inputs, attrs, false),
};

export const fusedMatMulKernel: NativeKernel = {
  kernelName: '_FusedMatMul',
  plan: (inputs, attrs) => planMatMul(inputs, attrs, true),
};

function planMatMul(
  inputs: tf.NamedTensorInfoMap,
  attrs: tf.NamedAttrMap,
  fused: boolean,
): NativePlan | null {
  const a = inputs['a']!;
  const b = inputs['b']!;
  const bias = fused ? inputs['bias'] : undefined;
  const transposeA = Boolean(attrs['transposeA']);
  const transposeB = Boolean(attrs['transposeB']);
  if (!allFloat32(a, b, bias) || a.shape.length < 2 || b.shape.length < 2) return null;
  const activation = fused ? planActivation(attrs, inputs['preluActivationWeights']) : null;
  if (fused && activation == null) return null;

  const [aRows, aCols] = a.shape.slice(-2) as [number, number];
  const [bRows, bCols] = b.shape.slice(-2) as [number, number];
  const m = transposeA ? aCols : aRows;
  const k = transposeA ? aRows : aCols;
  const kB = transposeB ? bCols : bRows;
  const n = transposeB ? bRows : bCols;
  if (k !== kB) return null; // let TF.js raise its own error
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  let batch: number[];
  try {
    batch = tf.broadcast_util.assertAndGetBroadcastShape(batchA, batchB);
  } catch {
    return null;
  }
  const outShape = [...batch, m, n];
  const biasShape = bias == null ? null : dropLeadingOnes(bias.shape);
  const asGemm =
    batch.every((d) => d === 1) &&
    (biasShape == null || (biasShape.length <= 2 && fitsUnidirectionally(biasShape, [m, n])));

  const inputShapes = asGemm
    ? [
        [aRows, aCols],
        [bRows, bCols],
      ]
    : [a.shape, b.shape];
  const graphInputs = [a, b];
  if (bias != null) {
    graphInputs.push(bias);
    inputShapes.push(asGemm ? biasShape! : bias.shape);
  }
  if (activation?.preluWeights != null) {
    graphInputs.push(activation.preluWeights);
    inputShapes.push(activation.preluWeights.shape);
  }
  const mmShape = asGemm ? [m, n] : outShape;
  const key = [
    asGemm ? 'Gemm' : 'MatMul',
    inputShapes.map((s) => `[${s.join(',')}]`).join(''),
    transposeA,
    transposeB,
    activation?.key ?? '',
  ].join('|');

  const build = () => {
    const names = [
      'a',
      'b',
      ...(bias != null ? ['bias'] : []),
      ...(activation?.preluWeights ? ['alpha'] : []),
    ];
    const nodes: OnnxNode[] = [];
    let current: string;
    if (asGemm) {
      nodes.push({
        opType: 'Gemm',
        inputs: bias != null ? ['a', 'b', 'bias'] : ['a', 'b'],
        outputs: ['mm'],
        attributes: { transA: int(transposeA ? 1 : 0), transB: int(transposeB ? 1 : 0) },
      });
      current = 'mm';
    } else {
      const swapLast = (rank: number) => [...Array(rank - 2).keys(), rank - 1, rank - 2];
      let left = 'a';
      let right = 'b';
      if (transposeA) {
        nodes.push({
          opType: 'Transpose',
          inputs: ['a'],
          outputs: ['at'],
          attributes: { perm: ints(swapLast(a.shape.length)) },
        });
        left = 'at';
      }
      if (transposeB) {
        nodes.push({
          opType: 'Transpose',
          inputs: ['b'],
          outputs: ['bt'],
          attributes: { perm: ints(swapLast(b.shape.length)) },
        });
        right = 'bt';
      }
      nodes.push({ opType: 'MatMul', inputs: [left, right], outputs: ['mm'] });
      current = 'mm';
      if (bias != null) {
        nodes.push({ opType: 'Add', inputs: ['mm', 'bias'], outputs: ['biased'] });
        current = 'biased';
      }
    }
    const act = activation?.nodes(current, 'y') ?? [];
    if (act.length === 0) {
      const last = nodes[nodes.length - 1]!;
      nodes[nodes.length - 1] = { ...last, outputs: ['y'] };
    }
    nodes.push(...act);
    return {
      nodes,
      inputs: names.map((name, i) => ({ name, shape: inputShapes[i]! })),
      outputs: [{ name: 'y', shape: mmShape }],
    };
  };
  return { key, build, inputs: graphInputs, inputShapes, outShape };
}

function dropLeadingOnes(shape: number[]): number[] {
  let i = 0;
  while (i < shape.length && shape[i] === 1) i++;
  return shape.slice(i);
}

/** Whether `shape` broadcasts to `target` without `target` changing (Gemm's rule for C). */
function fitsUnidirectionally(shape: number[], target: number[]): boolean {
  const offset = target.length - shape.length;
  return shape.every((d, i) => d === 1 || d === target[offset + i]);
}
