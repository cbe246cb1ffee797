/**
 * Shape, stride, padding and dilation of a 2D convolution, from the attributes TF.js passes
 * to its conv kernels, via TF.js's own computeConv2DInfo so padding ('same', 'valid',
 * explicit numbers or per-side lists) and dimRoundingMode mean exactly what they mean there.
 */
import * as tf from '@tensorflow/tfjs';

export type Conv2DInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;
type Shape4D = [number, number, number, number];

/** Thrown for attribute values these kernels do not implement; the message names the attribute. */
export class UnsupportedKernelAttributeError extends Error {
  override name = 'UnsupportedKernelAttributeError';
}

export function conv2DInfoFromAttrs(
  kernelName: string,
  inShape: number[],
  filterShape: number[],
  attrs: tf.NamedAttrMap,
  depthwise: boolean,
): Conv2DInfo {
  const dataFormat = (attrs['dataFormat'] as string | undefined) ?? 'NHWC';
  if (dataFormat !== 'NHWC') {
    throw new UnsupportedKernelAttributeError(
      `${kernelName}: dataFormat '${dataFormat}' is not supported by adahessian's kernel; only 'NHWC'.`,
    );
  }
  if (inShape.length !== 4 || filterShape.length !== 4) {
    throw new Error(
      `${kernelName}: expected rank-4 input and filter shapes, got [${inShape.join(',')}] and [${filterShape.join(',')}].`,
    );
  }
  const strides = (attrs['strides'] as number | [number, number] | undefined) ?? 1;
  const dilations = (attrs['dilations'] as number | [number, number] | undefined) ?? 1;
  const pad = attrs['pad'] as Parameters<typeof tf.backend_util.computeConv2DInfo>[4];
  const roundingMode = attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined;
  return tf.backend_util.computeConv2DInfo(
    inShape as Shape4D,
    filterShape as Shape4D,
    strides,
    dilations,
    pad,
    roundingMode,
    depthwise,
    'channelsLast',
  );
}
