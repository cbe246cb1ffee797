/** Finding the variables an optimizer step works on, the way TF.js's optimizers do. */
import * as tf from '@tensorflow/tfjs';

/** TF.js's NamedTensor (not re-exported by @tensorflow/tfjs). */
export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

/** `varList`'s trainable variables, or every trainable variable the engine knows of. */
export function trainableVariables(varList?: tf.Variable[]): tf.Variable[] {
  const all =
    varList ??
    Object.values(
      (tf.engine() as unknown as { registeredVariables: Record<string, tf.Variable> })
        .registeredVariables,
    );
  const vars = all.filter((v) => v.trainable);
  if (vars.length === 0) {
    throw new Error(
      'There are no trainable variables to optimize (varList is empty or all frozen).',
    );
  }
  return vars;
}

/** The registered variables with these names, in this order. */
export function resolveVariables(names: string[], owner: string): tf.Variable[] {
  const registered = (
    tf.engine() as unknown as { registeredVariables: Record<string, tf.Variable> }
  ).registeredVariables;
  return names.map((n) => {
    const v = registered[n];
    if (v == null) throw new Error(`${owner}: no variable named '${n}' is registered.`);
    return v;
  });
}

export function toNamedMap(x: tf.NamedTensorMap | NamedTensor[]): tf.NamedTensorMap {
  if (!Array.isArray(x)) return x;
  const map: tf.NamedTensorMap = {};
  for (const { name, tensor } of x) map[name] = tensor;
  return map;
}
