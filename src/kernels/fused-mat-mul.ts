/**
 * wasm's _FusedMatMul (4.22) adds the bias (and PReLU weights) at the wrong positions
 * whenever a transpose flag is set or the batch is larger than one: for
 * fused.matMul({a: [3,2], b: [3,4], transposeA: true, bias}) it adds bias[3] to every entry
 * of the second row. Only the plain [1, m, k] x [1, k, n] form that tf.layers dense uses is
 * right. We keep the stock kernel for that form and otherwise run the product without the
 * epilogue, then add the bias and apply the activation with the backend's own kernels.
 */
import type * as tf from '@tensorflow/tfjs';
import { asBackend, disposeInfo, runBackendKernel } from './backend-access.js';

/** The activation kernels _FusedMatMul can fuse, by the name TF.js gives them in attrs. */
function applyActivation(
  backend: tf.KernelBackend,
  backendName: string,
  x: tf.TensorInfo,
  activation: string,
  preluWeights: tf.TensorInfo | undefined,
  leakyreluAlpha: number | undefined,
): tf.TensorInfo {
  const unary: Record<string, string> = {
    relu: 'Relu',
    relu6: 'Relu6',
    elu: 'Elu',
    sigmoid: 'Sigmoid',
  };
  if (activation === 'linear') return x;
  if (activation in unary) return runBackendKernel(unary[activation]!, backendName, backend, { x });
  if (activation === 'leakyrelu') {
    return runBackendKernel(
      'LeakyRelu',
      backendName,
      backend,
      { x },
      { alpha: leakyreluAlpha ?? 0.2 },
    );
  }
  if (activation === 'prelu' && preluWeights != null) {
    return runBackendKernel('Prelu', backendName, backend, { x, alpha: preluWeights });
  }
  throw new Error(`_FusedMatMul: activation '${activation}' is not supported.`);
}

export function makeFusedMatMul(
  backendName: string,
  stock: tf.KernelConfig | undefined,
): tf.KernelFunc {
  if (stock == null) throw new Error(`_FusedMatMul: no stock kernel on '${backendName}' to fix.`);
  return (args) => {
    const { inputs, attrs = {} } = args;
    const a = inputs['a']!;
    const b = inputs['b']!;
    const bias = inputs['bias'];
    const preluWeights = inputs['preluActivationWeights'];
    const transposeA = attrs['transposeA'] === true;
    const transposeB = attrs['transposeB'] === true;
    const batch = a.shape.slice(0, -2).reduce((p, d) => p * d, 1);
    const batchB = b.shape.slice(0, -2).reduce((p, d) => p * d, 1);
    const stockIsRight = !transposeA && !transposeB && batch === 1 && batchB === 1;
    if (stockIsRight || (bias == null && preluWeights == null)) return stock.kernelFunc(args);

    const backend = asBackend(args.backend);
    const product = runBackendKernel(
      'BatchMatMul',
      backendName,
      backend,
      { a, b },
      {
        transposeA,
        transposeB,
      },
    );
    const biased =
      bias == null
        ? product
        : runBackendKernel('Add', backendName, backend, { a: product, b: bias });
    const out = applyActivation(
      backend,
      backendName,
      biased,
      String(attrs['activation'] ?? 'linear'),
      preluWeights,
      attrs['leakyreluAlpha'] as number | undefined,
    );
    if (biased !== product) disposeInfo(backend, product);
    if (out !== biased) disposeInfo(backend, biased);
    return out;
  };
}
