/**
 * Gradients of the fused convolutions (tf.fused.conv2d, tf.fused.depthwiseConv2d; every
 * tf.layers.conv2d and conv1d) with dilations > 1.
 *
 * Under a gradient tape TF.js runs the fused op only with a linear activation (a fused relu
 * is unfused there; tf.layers asks for linear when the layer's activation is not a fusable
 * one, e.g. tanh, or none), through tf.customGrad, whose gradient closure asserts dilation 1:
 * stock TF.js 4.22 cannot train such a dilated tf.layers.conv2d. That closure is no registered gradient we could replace, so we
 * watch the engine: while a customGrad's function runs, the FusedConv2D /
 * FusedDepthwiseConv2D kernel it launches is noted with its attributes, and when they are
 * dilated the closure is swapped for one built on the unfused kernels' gradients (ours, in
 * gradients/conv.ts, which handle dilation and are taped, so the second-order sweep can
 * differentiate them too). Undilated fused convs keep the stock closure, bit for bit.
 */
import * as tf from '@tensorflow/tfjs';
import { privateEngine } from '../engine.js';

const FUSED_TO_UNFUSED: Readonly<Record<string, string>> = {
  FusedConv2D: 'Conv2D',
  FusedDepthwiseConv2D: 'DepthwiseConv2dNative',
};

interface FusedCall {
  kernelName: string;
  attrs: tf.NamedAttrMap;
}

type GradFunc = (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[];
type CustomGradFunc = (...args: unknown[]) => { value: tf.Tensor; gradFunc: GradFunc };

interface HookableEngine {
  state: { activeScope: { name: string } | null };
  runKernel(kernelName: string, inputs: tf.NamedTensorMap, attrs?: tf.NamedAttrMap): unknown;
  customGrad(f: CustomGradFunc): (...inputs: tf.Tensor[]) => tf.Tensor;
}

/** The op scopes in which the fused conv ops create their customGrad (see tfjs-core's op()). */
const FUSED_CONV_SCOPES = new Set(['fusedConv2d__op', 'fusedDepthwiseConv2d__op']);

const PATCHED = Symbol.for('adahessian.dilatedFusedConvGradients');

/** The fused conv kernels launched by the customGrad function now running, innermost first. */
let launched: FusedCall[] | null = null;

function isDilated(attrs: tf.NamedAttrMap): boolean {
  const d = attrs['dilations'] as number | number[] | undefined;
  if (d == null) return false;
  return typeof d === 'number' ? d !== 1 : d.some((v) => v !== 1);
}

/**
 * The fused op's gradient through the unfused kernel's registered gradient:
 * saved = [filter, x, y, bias?], as the stock fused ops save them.
 */
function dilatedFusedGrad(call: FusedCall, stock: GradFunc): GradFunc {
  return (dy, saved) => {
    const activation = (call.attrs['activation'] as string | undefined) ?? 'linear';
    if (activation !== 'linear' && activation !== 'relu') return stock(dy, saved);
    if ((call.attrs['dataFormat'] ?? 'NHWC') !== 'NHWC') return stock(dy, saved);
    const [filter, x, y, bias] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor?];
    const dyAct = activation === 'relu' ? tf.mul(dy, tf.step(y)) : dy;
    const unfused = tf.getGradient(FUSED_TO_UNFUSED[call.kernelName]!)!;
    const grads = unfused.gradFunc(dyAct, [x, filter], call.attrs);
    const der = [grads['x']!(), grads['filter']!()];
    if (bias != null) {
      const axes = tf.backend_util.getReductionAxes(bias.shape, dyAct.shape);
      der.push(tf.reshape(axes.length > 0 ? tf.sum(dyAct, axes) : dyAct, bias.shape));
    }
    return der;
  };
}

/** Installs the engine hooks described above. Idempotent. */
export function installDilatedFusedConvGradients(): void {
  const engine = privateEngine() as unknown as HookableEngine & { [PATCHED]?: boolean };
  if (engine[PATCHED]) return;
  const runKernel = engine.runKernel;
  engine.runKernel = function (this: HookableEngine, kernelName, inputs, attrs) {
    if (launched != null && attrs != null && kernelName in FUSED_TO_UNFUSED) {
      launched.push({ kernelName, attrs });
    }
    return runKernel.call(this, kernelName, inputs, attrs);
  };
  const customGrad = engine.customGrad;
  engine.customGrad = function (this: HookableEngine, f) {
    // Only the fused conv ops' own customGrads (saved = [filter, x, y, bias?]) are watched.
    if (!FUSED_CONV_SCOPES.has(this.state.activeScope?.name ?? '')) return customGrad.call(this, f);
    const watched: CustomGradFunc = (...args) => {
      const outer = launched;
      const calls: FusedCall[] = [];
      launched = calls;
      let res;
      try {
        res = f(...args);
      } finally {
        launched = outer;
      }
      const call = calls.length === 1 ? calls[0]! : undefined;
      if (call == null || !isDilated(call.attrs)) return res;
      return { value: res.value, gradFunc: dilatedFusedGrad(call, res.gradFunc) };
    };
    return customGrad.call(this, watched);
  };
  engine[PATCHED] = true;
}
