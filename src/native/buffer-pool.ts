/**
 * Reuse of the output arrays of native kernels on the cpu backend. A training step allocates
 * ~170 MB of short-lived Float32Arrays (a CNN step at batch 128); each one costs fresh pages
 * and pushes V8 into a garbage collection for "external memory pressure" every few kernels.
 * Handing a disposed output's array to the next kernel of the same size avoids both.
 *
 * An array may be reused only if nothing outside our kernels can still see it. The cpu backend
 * hands out a tensor's array itself (dataSync, TensorBuffer, and kernels such as Slice make
 * views of it), so we watch every way to it: the backend's record for a native output gets a
 * `values` accessor that marks the array as seen by whoever reads it (readSync, read, any
 * TF.js kernel). Our own kernels read through `valuesOf`, which does not mark. Only arrays
 * never seen are pooled when the backend deletes their data, and at most `maxBytes` of them.
 */
import type * as tf from '@tensorflow/tfjs';

interface Tracked {
  values: Float32Array;
  seen: boolean;
  /** Give the array back and hand a copy to the first reader not ours (see track). */
  copyOnSight?: boolean;
  /** A deferred output's computation, run on its first read (then cleared). */
  fill?: (values: Float32Array) => void;
  /** Lets go of what the deferred computation needs (after it ran, or at disposal). */
  release?: () => void;
  /** What a fusing kernel may know about a pending output instead of reading it. */
  info?: unknown;
  /** The pool's set of pending entries, while this one is in it. */
  pending?: Set<Tracked>;
}

interface CpuRecord {
  values: unknown;
  refCount: number;
}

interface CpuBackendInternals {
  data: { get(dataId: object): CpuRecord | undefined; has(dataId: object): boolean };
  disposeData(dataId: object, force?: boolean): boolean;
  readSync(dataId: object): unknown;
}

export class OutputBufferPool {
  private readonly tracked = new WeakMap<object, Tracked>();
  /** Deferred outputs not computed yet (held only until they are computed or disposed). */
  private readonly pending = new Set<Tracked>();
  private readonly free = new Map<number, Float32Array[]>();
  private freeBytes = 0;
  /** While > 0 (suspend), disposed arrays are left to GC instead of kept. */
  private suspended = 0;
  /** Arrays handed out again, and arrays kept from the pool because someone saw them. */
  reused = 0;
  seenAndKept = 0;

  /**
   * `giveBack`: where unseen arrays go instead of this pool's own lists (arrays that live in
   * a WebAssembly memory: adahessian-simd.ts keeps their free lists).
   */
  constructor(
    private readonly maxBytes: number,
    private readonly giveBack?: (values: Float32Array) => void,
  ) {}

  /** An array of `length` floats: a pooled one (old contents) when there is one, else new (zeros). */
  take(length: number): Float32Array {
    const list = this.free.get(length);
    const recycled = list?.pop();
    if (recycled == null) return new Float32Array(length);
    this.freeBytes -= recycled.byteLength;
    this.reused++;
    return recycled;
  }

  /**
   * Watches the backend's record of a native output (just made by makeTensorInfo): any read
   * of its values from now on marks the array as seen. Backends without such records are
   * left alone (their arrays are never pooled). With `copyOnSight`, the first such read gets
   * a copy, which the record keeps from then on, and the array is given back at once: an
   * array in a WebAssembly memory is never seen by anyone but us, so it is never lost to GC.
   */
  track(
    backend: tf.KernelBackend,
    dataId: object,
    values: Float32Array,
    copyOnSight = false,
  ): void {
    const record = internals(backend)?.data.get(dataId);
    if (record == null || record.values !== values) return;
    const entry: Tracked = { values, seen: false, copyOnSight };
    const giveBackOwn = () => {
      if (entry.seen || !entry.copyOnSight) return;
      const own = entry.values;
      entry.values = own.slice();
      this.put(own);
    };
    Object.defineProperty(record, 'values', {
      configurable: true,
      enumerable: true,
      get: () => {
        materialize(entry);
        giveBackOwn();
        entry.seen = true;
        return entry.values;
      },
      set: (v: Float32Array) => {
        giveBackOwn();
        entry.seen = true;
        entry.values = v;
      },
    });
    this.tracked.set(dataId, entry);
  }

  /** Whether outputs on this backend can be watched (the cpu backend's records). */
  watches(backend: tf.KernelBackend): boolean {
    return internals(backend) != null;
  }

  /** A tensor's values for our own kernels: no mark for our outputs, readSync for others. */
  valuesOf(backend: tf.KernelBackend, dataId: object): Float32Array {
    const entry = this.tracked.get(dataId);
    if (entry != null && internals(backend)?.data.has(dataId)) {
      materialize(entry);
      return entry.values;
    }
    return backend.readSync(dataId) as Float32Array;
  }

  /**
   * Makes a tracked output deferred: its values are computed by `fill` on the first read
   * (by anyone: the backend's record, or valuesOf), and `release` runs once that happened or
   * the output is disposed unread. `info` is for kernels that can use the output without it.
   * False when the output is not tracked (then the caller computes it now).
   */
  defer(
    dataId: object,
    fill: (values: Float32Array) => void,
    release: () => void,
    info: unknown,
  ): boolean {
    const entry = this.tracked.get(dataId);
    if (entry == null || entry.fill != null) return false;
    entry.fill = fill;
    entry.release = release;
    entry.info = info;
    entry.pending = this.pending;
    this.pending.add(entry);
    return true;
  }

  /** Computes every deferred output not read yet (before the native kernels go away). */
  materializeAll(): void {
    for (const entry of [...this.pending]) materialize(entry);
  }

  /** The info of a deferred output not computed yet; undefined otherwise. */
  pendingInfo(dataId: object): unknown {
    const entry = this.tracked.get(dataId);
    return entry?.fill != null ? entry.info : undefined;
  }

  /**
   * Wraps the backend's disposeData so that an unseen native output goes to the pool once the
   * backend deleted its data. Returns how to undo it.
   */
  install(backend: tf.KernelBackend): () => void {
    const b = internals(backend);
    if (b == null) return () => {};
    const original = b.disposeData;
    const wrapped = (dataId: object, force?: boolean): boolean => {
      const deleted = original.call(b, dataId, force);
      const entry = this.tracked.get(dataId);
      if (entry != null && !b.data.has(dataId)) {
        this.tracked.delete(dataId);
        // Disposed unread: its computation never runs; what it held is let go.
        this.pending.delete(entry);
        entry.fill = undefined;
        entry.info = undefined;
        const release = entry.release;
        entry.release = undefined;
        release?.();
        if (entry.seen) this.seenAndKept++;
        else this.put(entry.values);
      }
      return deleted;
    };
    Object.defineProperty(b, 'disposeData', { value: wrapped, configurable: true, writable: true });
    return () => {
      if (b.disposeData === wrapped) delete (b as Partial<CpuBackendInternals>).disposeData;
      this.free.clear();
      this.freeBytes = 0;
    };
  }

  /**
   * Empties the pool and keeps no array until the returned resume runs: a step graph's
   * capture and ONNX Runtime run (src/native/step-graph) need that memory more, and arrays
   * left to GC during the capture's op-by-op step are memory the graph's run can reuse.
   */
  suspend(): () => void {
    this.free.clear();
    this.freeBytes = 0;
    this.suspended++;
    let resumed = false;
    return () => {
      if (!resumed) this.suspended--;
      resumed = true;
    };
  }

  private put(values: Float32Array): void {
    if (this.giveBack != null) {
      this.giveBack(values);
      return;
    }
    if (this.suspended > 0) return;
    if (this.freeBytes + values.byteLength > this.maxBytes) return; // let GC have it
    const list = this.free.get(values.length) ?? [];
    list.push(values);
    this.free.set(values.length, list);
    this.freeBytes += values.byteLength;
  }
}

/** The cpu backend's data map and methods, or null for a backend without them (wasm). */
function internals(backend: tf.KernelBackend): CpuBackendInternals | null {
  const b = backend as unknown as Partial<CpuBackendInternals>;
  return b.data != null &&
    typeof b.data.get === 'function' &&
    typeof b.data.has === 'function' &&
    typeof b.disposeData === 'function'
    ? (b as CpuBackendInternals)
    : null;
}

/** Runs a deferred output's computation once, then lets go of what it needed. */
function materialize(entry: Tracked): void {
  const fill = entry.fill;
  if (fill == null) return;
  entry.pending?.delete(entry);
  entry.pending = undefined;
  entry.fill = undefined;
  entry.info = undefined;
  fill(entry.values);
  const release = entry.release;
  entry.release = undefined;
  release?.();
}
