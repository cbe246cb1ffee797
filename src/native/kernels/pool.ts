/**
 * MaxPool and AvgPool (NHWC) as ONNX MaxPool / AveragePool between transposes. Padding never
 * wins a max and is not counted in an average (count_include_pad = 0), as in TF.js.
 */
import * as tf from '@tensorflow/tfjs';
import type { OnnxGraph } from '../onnx-model.js';
import { allFloat32, int, ints, type NativeKernel, type NativePlan } from './types.js';

type Shape4D = [number, number, number, number];

function poolKernel(kernelName: 'MaxPool' | 'AvgPool'): NativeKernel {
  return {
    kernelName,
    plan(inputs, attrs): NativePlan | null {
      const x = inputs['x']!;
      if (!allFloat32(x) || x.shape.length !== 4) return null;
      let info;
      try {
        info = tf.backend_util.computePool2DInfo(
          x.shape as Shape4D,
          attrs['filterSize'] as [number, number] | number,
          attrs['strides'] as [number, number] | number,
          1,
          attrs['pad'] as Parameters<typeof tf.backend_util.computePool2DInfo>[4],
          attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
        );
      } catch {
        return null;
      }
      const { top, left } = info.padInfo;
      // As for convolutions: the far padding that gives TF.js's output size under floor().
      const far = (inSize: number, before: number, k: number, s: number, out: number) => {
        const p = Math.max(0, (out - 1) * s + k - inSize - before);
        return Math.floor((inSize + before + p - k) / s) + 1 === out && p < k ? p : -1;
      };
      const bottom = far(info.inHeight, top, info.filterHeight, info.strideHeight, info.outHeight);
      const right = far(info.inWidth, left, info.filterWidth, info.strideWidth, info.outWidth);
      if (
        Math.min(top, left, bottom, right) < 0 ||
        top >= info.filterHeight ||
        left >= info.filterWidth
      ) {
        return null;
      }
      const outShape = [...info.outShape];
      const key = `${kernelName}|[${x.shape.join(',')}]|${info.filterHeight},${info.filterWidth}|${info.strideHeight},${info.strideWidth}|${top},${left},${bottom},${right}`;
      const build = (): OnnxGraph => ({
        nodes: [
          {
            opType: 'Transpose',
            inputs: ['x'],
            outputs: ['xt'],
            attributes: { perm: ints([0, 3, 1, 2]) },
          },
          {
            opType: kernelName === 'MaxPool' ? 'MaxPool' : 'AveragePool',
            inputs: ['xt'],
            outputs: ['yt'],
            attributes: {
              kernel_shape: ints([info.filterHeight, info.filterWidth]),
              strides: ints([info.strideHeight, info.strideWidth]),
              pads: ints([top, left, bottom, right]),
              ...(kernelName === 'AvgPool' ? { count_include_pad: int(0) } : {}),
            },
          },
          {
            opType: 'Transpose',
            inputs: ['yt'],
            outputs: ['y'],
            attributes: { perm: ints([0, 2, 3, 1]) },
          },
        ],
        inputs: [{ name: 'x', shape: x.shape }],
        outputs: [{ name: 'y', shape: outShape }],
      });
      return { key, build, inputs: [x], inputShapes: [x.shape], outShape };
    },
  };
}

export const maxPoolKernel = poolKernel('MaxPool');
export const avgPoolKernel = poolKernel('AvgPool');
