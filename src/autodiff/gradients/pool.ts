/**
 * Second-order gradients for 2D pooling, and a correct first-order gradient for average
 * pooling with padding.
 *
 * MaxPoolGrad and AvgPoolGrad are linear in dy: dx = S dy, where S depends only on the
 * input x (which element of each window is the maximum, or the averaging weights). Their
 * derivative with respect to x (and MaxPool's output) is zero almost everywhere, and with
 * respect to dy it is the transpose, dy_bar = S^T dx_bar. We build S^T from the backend's own
 * grad kernel, so it selects exactly the positions the kernel selects, ties included:
 * outputs whose windows do not overlap are taken together (a "comb" of outputs); the kernel
 * run on the comb's indicator as dy scatters each output's weights into its own window, and
 * a window sum of those weights times dx_bar gives (S^T dx_bar) on the comb. Windows overlap
 * only when the filter is larger than the stride, so 2x2 stride 2 needs one comb, 3x3 stride
 * 2 needs four.
 *
 * Stock TF.js 4.22 gets the first-order gradient of average pooling with padding ('same')
 * wrong on cpu and wasm: the forward kernel divides each window's sum by the number of real
 * (unpadded) inputs, the gradient kernel by the full window size. The AvgPool gradient below
 * is the exact transpose of whatever the forward kernel does; unpadded pools keep the stock
 * gradient, bit for bit.
 */
import * as tf from '@tensorflow/tfjs';
import { addAll } from '../../util/add-all.js';
import { MAX_POOL_GRAD_TRANSPOSE } from '../../kernels/max-pool-grad.js';
import { markSecondOrderVerified } from '../verified-kernels.js';

type Pad = Parameters<typeof tf.avgPool>[3];
type Shape4D = [number, number, number, number];
type PoolInfo = ReturnType<typeof tf.backend_util.computePool2DInfo>;

interface PoolAttrs {
  filterSize: [number, number] | number;
  strides: [number, number] | number;
  pad: Pad;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function poolAttrs(attrs: tf.NamedAttrMap): PoolAttrs {
  return attrs as unknown as PoolAttrs;
}

function poolInfo(shape: number[], a: PoolAttrs): PoolInfo {
  if (shape.length !== 4) {
    throw new Error(`Pooling gradient: expected a rank-4 NHWC input, got shape [${shape}].`);
  }
  return tf.backend_util.computePool2DInfo(
    shape as Shape4D,
    a.filterSize,
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
  );
}

function runKernel(name: string, inputs: tf.NamedTensorMap, attrs: object): tf.Tensor4D {
  return tf.engine().runKernel(name, inputs, attrs as tf.NamedAttrMap) as tf.Tensor4D;
}

/** [1, OH, OW, 1]: 1 at outputs (oh, ow) with oh % gh == a and ow % gw == b, else 0. */
function combMask(info: PoolInfo, gh: number, gw: number, a: number, b: number): tf.Tensor4D {
  const { outHeight, outWidth } = info;
  const values = new Float32Array(outHeight * outWidth);
  for (let oh = a; oh < outHeight; oh += gh) {
    for (let ow = b; ow < outWidth; ow += gw) values[oh * outWidth + ow] = 1;
  }
  return tf.tensor4d(values, [1, outHeight, outWidth, 1]);
}

/**
 * S^T dxBar for the linear map dy -> dx = gradKernel(dy, ...) of a pooling gradient kernel,
 * using only that kernel, a window sum (depthwise conv with a ones filter, same geometry)
 * and element-wise products, all taped.
 */
function poolGradTranspose(
  gradKernel: 'MaxPoolGrad' | 'AvgPoolGrad',
  dxBar: tf.Tensor,
  inputs: tf.NamedTensorMap,
  attrs: tf.NamedAttrMap,
): tf.Tensor {
  const a = poolAttrs(attrs);
  const info = poolInfo(dxBar.shape, a);
  const { filterHeight, filterWidth, strideHeight, strideWidth, inChannels } = info;
  const ones = tf.ones([filterHeight, filterWidth, inChannels, 1]) as tf.Tensor4D;
  const windowSum = (t: tf.Tensor) =>
    tf.depthwiseConv2d(
      t as tf.Tensor4D,
      ones,
      [strideHeight, strideWidth],
      a.pad,
      'NHWC',
      1,
      a.dimRoundingMode,
    );
  const allOutputs = tf.ones(info.outShape);
  const gh = Math.ceil(filterHeight / strideHeight);
  const gw = Math.ceil(filterWidth / strideWidth);
  if (gh === 1 && gw === 1) {
    const weights = runKernel(gradKernel, { ...inputs, dy: allOutputs }, attrs);
    return windowSum(tf.mul(weights, dxBar));
  }
  const terms: tf.Tensor[] = [];
  for (let i = 0; i < gh; i++) {
    for (let j = 0; j < gw; j++) {
      const mask = combMask(info, gh, gw, i, j);
      const weights = runKernel(gradKernel, { ...inputs, dy: tf.mul(allOutputs, mask) }, attrs);
      terms.push(tf.mul(windowSum(tf.mul(weights, dxBar)), mask));
    }
  }
  return addAll(terms);
}

/**
 * S^T dxBar for MaxPoolGrad: on backends where our MaxPoolGrad runs (cpu, wasm), its own
 * transpose kernel, a gather from the same window winners; elsewhere the composite above.
 */
function maxPoolGradTranspose(
  dxBar: tf.Tensor,
  inputs: { input: tf.Tensor4D; output: tf.Tensor4D },
  attrs: tf.NamedAttrMap,
): tf.Tensor {
  if (tf.getKernel(MAX_POOL_GRAD_TRANSPOSE, tf.getBackend()) != null) {
    return runKernel(MAX_POOL_GRAD_TRANSPOSE, { dxBar, ...inputs }, attrs);
  }
  return poolGradTranspose('MaxPoolGrad', dxBar, inputs, attrs);
}

const maxPoolGradGrad: tf.GradConfig = {
  kernelName: 'MaxPoolGrad',
  inputsToSave: ['input', 'output'],
  gradFunc: (dxBar, saved, attrs) => {
    const [input, output] = saved as [tf.Tensor4D, tf.Tensor4D];
    return {
      dy: () => maxPoolGradTranspose(dxBar as tf.Tensor, { input, output }, attrs),
      // Which element is the maximum is piecewise constant in the input.
      input: () => tf.zerosLike(input),
      output: () => tf.zerosLike(output),
    };
  },
};

const avgPoolGradGrad: tf.GradConfig = {
  kernelName: 'AvgPoolGrad',
  inputsToSave: ['input'],
  gradFunc: (dxBar, saved, attrs) => {
    const [input] = saved as [tf.Tensor4D];
    return {
      dy: () => poolGradTranspose('AvgPoolGrad', dxBar as tf.Tensor, { input }, attrs),
      // The input only gives its shape.
      input: () => tf.zerosLike(input),
    };
  },
};

/** Number of positions of [o*s - before, o*s - before + f) inside [0, size), per output o. */
function validCounts(outSize: number, stride: number, before: number, f: number, size: number) {
  return Array.from({ length: outSize }, (_, o) => {
    const start = o * stride - before;
    return Math.max(0, Math.min(size, start + f) - Math.max(0, start));
  });
}

/**
 * dx for y = avgPool(x), the exact transpose of the forward kernel, for pools whose windows
 * reach into the padding. The forward kernel computes y[o] = (window sum)[o] / d[o] for some
 * divisor d (the count of real inputs on cpu and wasm); r = avgPool(ones) = count[o] / d[o]
 * tells us d without assuming a convention. We then lay the input on a canvas that contains
 * every window whole, where AvgPoolGrad with 'valid' padding (divisor f*f on every backend)
 * scatters dy * f*f / d[o] exactly, and cut the input back out.
 */
function paddedAvgPoolInputGrad(dy: tf.Tensor4D, x: tf.Tensor4D, a: PoolAttrs, info: PoolInfo) {
  const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = info;
  const { inHeight: h, inWidth: w, outHeight: oh, outWidth: ow } = info;
  const { top, left } = info.padInfo;
  const rowCounts = validCounts(oh, sh, top, fh, h);
  const colCounts = validCounts(ow, sw, left, fw, w);
  const inverseCounts = new Float32Array(oh * ow);
  for (let i = 0; i < oh; i++) {
    for (let j = 0; j < ow; j++)
      inverseCounts[i * ow + j] = (fh * fw) / (rowCounts[i]! * colCounts[j]!);
  }
  const ones = tf.ones([1, h, w, 1]) as tf.Tensor4D;
  const r = tf.avgPool(ones, a.filterSize, a.strides, a.pad, a.dimRoundingMode);
  const scale = tf.mul(r, tf.tensor4d(inverseCounts, [1, oh, ow, 1]));
  const canvasH = (oh - 1) * sh + fh;
  const canvasW = (ow - 1) * sw + fw;
  const canvas = tf.zeros([x.shape[0], canvasH, canvasW, x.shape[3]]);
  const onCanvas = runKernel(
    'AvgPoolGrad',
    { dy: tf.mul(dy, scale), input: canvas },
    { filterSize: [fh, fw], strides: [sh, sw], pad: 'valid' },
  );
  // Input rows [top, top + h) of the canvas; rows past the canvas are in no window.
  const keptH = Math.min(h, canvasH - top);
  const keptW = Math.min(w, canvasW - left);
  const kept = tf.slice(onCanvas, [0, top, left, 0], [-1, keptH, keptW, -1]);
  if (keptH === h && keptW === w) return kept;
  return tf.pad(kept, [
    [0, 0],
    [0, h - keptH],
    [0, w - keptW],
    [0, 0],
  ]);
}

function avgPoolGrad(stock: tf.GradConfig): tf.GradConfig {
  return {
    kernelName: 'AvgPool',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [tf.Tensor4D];
      const a = poolAttrs(attrs);
      const info = poolInfo(x.shape, a);
      const { top, left } = info.padInfo;
      const windowsInside =
        top === 0 &&
        left === 0 &&
        (info.outHeight - 1) * info.strideHeight + info.filterHeight <= info.inHeight &&
        (info.outWidth - 1) * info.strideWidth + info.filterWidth <= info.inWidth;
      if (windowsInside) return stock.gradFunc(dy, saved, attrs);
      return { x: () => paddedAvgPoolInputGrad(dy as tf.Tensor4D, x, a, info) };
    },
  };
}

let registered = false;

export function registerPoolGradients(): void {
  if (registered) return;
  const stockAvgPool = tf.getGradient('AvgPool');
  if (stockAvgPool == null) throw new Error('TF.js has no gradient for AvgPool registered.');
  tf.registerGradient(avgPoolGrad(stockAvgPool));
  tf.registerGradient(maxPoolGradGrad);
  tf.registerGradient(avgPoolGradGrad);
  // MaxPoolGradTranspose is not claimed: it only runs in the HVP sweep, and differentiating
  // it would take a third order.
  markSecondOrderVerified('MaxPool', 'MaxPoolGrad', 'AvgPool', 'AvgPoolGrad');
  registered = true;
}
