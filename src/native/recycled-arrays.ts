/**
 * Arrays of a training step's own tensors, reused by the next step: AdaHessian's probes, a
 * replayed step graph's outputs (gradients, Hutchinson diagonal) and the fused updates' new
 * w, m and v (adahessian-update.ts; first-order-update.ts for Adam, AdamW and momentum, so
 * that Adam's replayed step, the demo's baseline, makes no new arrays either).
 *
 * Why: a replayed small-CNN AdaHessian step (207k parameters) made ~5 MB of new Float32Arrays,
 * about six per parameter. V8 counts their memory as external and started a Mark-Compact
 * (5-27 ms on a ~55 MB heap) every 4-5 steps for it, against every ~10 for Adam's step, which
 * makes ~3 MB. Handing the arrays of one step's disposed tensors to the next step's makes
 * none after the first steps.
 *
 * The rule is buffer-pool.ts's (this is an OutputBufferPool of its own, never suspended): an
 * array goes back to the pool only when the backend has deleted its tensor's data and nothing
 * but our own code has read it. The cpu backend hands out a tensor's array itself (dataSync,
 * data, every kernel), so the backend's record gets a `values` accessor that marks the array
 * as seen on any read; a seen array is left to GC. Our readers, which never keep the array
 * past the call (the step graph's feeds to ONNX Runtime, the fused update), read through
 * `recycledValues`, which does not mark. So a tensor whose values a user, a TF.js kernel or
 * an op-by-op step ever saw is never written again; on a replayed AdaHessian step none of
 * these tensors is seen by anyone else, and all of them come back.
 *
 * The values are what they were: every array taken from the pool is fully written before its
 * tensor is made (ONNX Runtime writes every element of a preallocated output, the generator
 * every sign, the update every element), so results are bit for bit those of new arrays.
 *
 * Resident arrays (`takeResidentArray`): AdaHessian's SIMD update (adahessian-simd.ts) writes
 * its new w, m and v into arrays that live in its WebAssembly memory, so that the next step's
 * update reads them there instead of copying them in, and writes in place instead of copying
 * out. They follow the same rule in a pool of their own, with one difference: nobody but our
 * readers ever sees one. The first other read of such a tensor (an evaluation reading the
 * weights, dataSync, a checkpoint) gets a copy, which the tensor keeps from then on, and the
 * region goes back to its free list at once (buffer-pool.ts's copyOnSight), so a region is
 * never lost to GC and never written while anyone else holds it.
 */
import * as tf from '@tensorflow/tfjs';
import { OutputBufferPool } from './buffer-pool.js';

/** Enough for a few steps' worth of a model's tensors; beyond, arrays are left to GC. */
const DEFAULT_MAX_BYTES = 128 * 1024 * 1024;

interface Recycler {
  pool: OutputBufferPool;
  /** Arrays in a WebAssembly memory (made on first use; see ResidentArrays). */
  resident: { source: ResidentArrays; pool: OutputBufferPool } | null;
  /** Per pool, the backends whose disposals feed it (installed on first use). */
  backends: WeakMap<OutputBufferPool, WeakSet<object>>;
  restore: (() => void)[];
  /** Data ids of the tensors made here (weak: they go with the data), and their pools. */
  made: WeakMap<object, OutputBufferPool>;
}

/**
 * Arrays in a memory of their own (adahessian-simd.ts's WebAssembly memory): `take` gives a
 * free one of `length` or a new one while there is room (else null), `giveBack` takes one
 * back, `holds` says whether an array is one of them.
 */
export interface ResidentArrays {
  take(length: number): Float32Array | null;
  giveBack(values: Float32Array): void;
  holds(values: Float32Array): boolean;
}

/** Whether resident arrays are handed out (ADAHESSIAN_RESIDENT_ARRAYS=0, or benchmarks). */
let residentOn = process.env['ADAHESSIAN_RESIDENT_ARRAYS'] !== '0';
export function setResidentArrays(on: boolean): void {
  residentOn = on;
}

let recycler: Recycler | null = null;

/** Starts reusing arrays (enableNativeKernels calls it); returns how to stop. */
export function enableRecycledArrays(maxBytes: number = DEFAULT_MAX_BYTES): () => void {
  disableRecycledArrays();
  const own: Recycler = {
    pool: new OutputBufferPool(maxBytes),
    resident: null,
    backends: new WeakMap(),
    restore: [],
    made: new WeakMap(),
  };
  recycler = own;
  return () => {
    if (recycler === own) disableRecycledArrays();
  };
}

/** Stops reusing arrays: tensors made from now on are plain ones. Safe when off. */
export function disableRecycledArrays(): void {
  if (recycler == null) return;
  for (const restore of recycler.restore.reverse()) restore();
  recycler = null;
}

/** How many arrays were handed out again, and how many were kept from the pool as seen. */
export function recycledArraysStatus(): { reused: number; seenAndKept: number } | null {
  return recycler == null
    ? null
    : { reused: recycler.pool.reused, seenAndKept: recycler.pool.seenAndKept };
}

/**
 * A Float32Array of `length` for `recycledTensor`: a pooled one (old contents) or a new one.
 * The caller writes every element before making the tensor.
 */
export function takeArray(length: number): Float32Array {
  return recycler?.pool.take(length) ?? new Float32Array(length);
}

/**
 * A Float32Array of `length` for `recycledTensor` from `source`'s memory while recycling is on
 * and the memory has room (old contents), else as `takeArray`. The caller writes every element.
 */
export function takeResidentArray(length: number, source: ResidentArrays | null): Float32Array {
  const r = recycler;
  if (r == null || source == null || !residentOn) return takeArray(length);
  if (!r.pool.watches(tf.backend())) return takeArray(length);
  if (r.resident != null && r.resident.source !== source) return takeArray(length);
  return source.take(length) ?? takeArray(length);
}

/**
 * tf.tensor(values, shape, 'float32'), the array not copied; its array goes back to the pool
 * once the tensor's data is deleted, unless someone else read it meanwhile. `source`: where
 * `values` came from if takeResidentArray gave it.
 */
export function recycledTensor(
  values: Float32Array,
  shape: number[],
  source: ResidentArrays | null = null,
): tf.Tensor {
  const t = tf.tensor(values, shape, 'float32');
  const r = recycler;
  if (r == null) return t;
  const backend = tf.backend();
  if (!r.pool.watches(backend)) return t;
  let pool = r.pool;
  if (source?.holds(values)) {
    r.resident ??= { source, pool: new OutputBufferPool(Infinity, (a) => source.giveBack(a)) };
    pool = r.resident.pool;
  }
  let installed = r.backends.get(pool);
  if (installed == null) r.backends.set(pool, (installed = new WeakSet<object>()));
  if (!installed.has(backend)) {
    installed.add(backend);
    r.restore.push(pool.install(backend));
  }
  pool.track(backend, t.dataId, values, pool !== r.pool);
  r.made.set(t.dataId, pool);
  return t;
}

/**
 * The values of a tensor made by recycledTensor, without marking them seen; null for any
 * other. Only for readers that do not keep the array (or a view of it) past their call.
 */
export function recycledValues(backend: tf.KernelBackend, dataId: object): Float32Array | null {
  const r = recycler;
  const pool = r?.made.get(dataId);
  return pool == null ? null : pool.valuesOf(backend, dataId);
}

/** A float32 tensor's values for a reader that does not keep them (see recycledValues). */
export function valuesForUpdate(t: tf.Tensor): Float32Array {
  return recycledValues(tf.backend(), t.dataId) ?? (t.dataSync() as Float32Array);
}
