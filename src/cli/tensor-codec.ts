/**
 * Tensors as JSON: name, dtype, shape and the raw bytes in base64, so a value read back is the
 * same float32 (or int32) bit for bit. Used by checkpoints.
 */
import * as tf from '@tensorflow/tfjs';

export interface EncodedTensor {
  name: string;
  dtype: 'float32' | 'int32';
  shape: number[];
  /** base64 of the little-endian values. */
  data: string;
}

export async function encodeTensor(name: string, tensor: tf.Tensor): Promise<EncodedTensor> {
  if (tensor.dtype !== 'float32' && tensor.dtype !== 'int32') {
    throw new Error(
      `Cannot save tensor '${name}' of dtype ${tensor.dtype} (float32 and int32 only).`,
    );
  }
  const values = (await tensor.data()) as Float32Array | Int32Array;
  const bytes = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  return { name, dtype: tensor.dtype, shape: tensor.shape.slice(), data: bytes.toString('base64') };
}

export async function encodeNamedTensors(
  named: { name: string; tensor: tf.Tensor }[],
): Promise<EncodedTensor[]> {
  return Promise.all(named.map(({ name, tensor }) => encodeTensor(name, tensor)));
}

/** A new tensor (the caller disposes it); throws naming the entry when it does not add up. */
export function decodeTensor(encoded: EncodedTensor, where: string): tf.Tensor {
  const { name, dtype, shape, data } = encoded ?? ({} as EncodedTensor);
  if (
    typeof name !== 'string' ||
    (dtype !== 'float32' && dtype !== 'int32') ||
    !Array.isArray(shape) ||
    typeof data !== 'string'
  ) {
    throw new Error(`${where}: a saved tensor entry is malformed.`);
  }
  const bytes = Buffer.from(data, 'base64');
  const size = shape.reduce((a, b) => a * b, 1);
  if (bytes.length !== size * 4) {
    throw new Error(
      `${where}: tensor '${name}' of shape [${shape.join(', ')}] needs ${size * 4} bytes, has ${bytes.length}.`,
    );
  }
  // Copy into an aligned buffer: Buffer.from(base64) may sit at any offset of a shared pool.
  const aligned = new ArrayBuffer(bytes.length);
  new Uint8Array(aligned).set(bytes);
  const values = dtype === 'float32' ? new Float32Array(aligned) : new Int32Array(aligned);
  return tf.tensor(values, shape, dtype);
}
