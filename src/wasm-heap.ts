/**
 * The wasm backend's heap holds at most 4 GiB (wasm32). When it is full, emscripten's malloc
 * returns 0 and TF.js's wasm backend registers the tensor at address 0 anyway: the next kernel
 * overwrites the start of the heap and the process dies later, far from the cause, with
 * "RuntimeError: memory access out of bounds". The guard makes the allocation itself throw
 * WasmHeapFullError, saying how much was asked for and how large the heap is, before anything is
 * written. Allocations inside the module's C++ code are beyond its reach, and when one of those
 * fails the module aborts for good; so the last 256 MiB of the heap are left to them, and a
 * tensor that would end there is refused the same way.
 */
import { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

export class WasmHeapFullError extends Error {
  override name = 'WasmHeapFullError';
}

interface WasmModule {
  _malloc(bytes: number): number;
  _free(address: number): void;
  HEAPU8: Uint8Array;
}

/** emscripten's getHeapMax() in tfjs-backend-wasm 4.22: 4 GiB - 64 KiB. */
const HEAP_MAX_BYTES = 4294901760;
/** Kept free for allocations made inside the wasm module (XNNPACK's buffers and the like). */
const RESERVE_BYTES = 256 * 2 ** 20;

const guardedModules = new WeakSet<object>();
let installed = false;

const mib = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MiB`;

/** Guards every wasm backend's tensor allocations (idempotent). */
export function installWasmHeapGuard(): void {
  if (installed) return;
  const proto = BackendWasm.prototype as unknown as {
    move(this: { wasm: WasmModule }, ...args: unknown[]): void;
  };
  const move = proto.move;
  proto.move = function (this: { wasm: WasmModule }, ...args: unknown[]) {
    guardModule(this.wasm);
    return move.apply(this, args);
  };
  installed = true;
}

function guardModule(wasm: WasmModule): void {
  if (guardedModules.has(wasm)) return;
  // emscripten's export stub replaces Module._malloc with the raw export on its first call:
  // keep ours in place and let such a replacement become the function we call.
  let malloc = wasm._malloc;
  const guarded = (bytes: number): number => {
    const address = malloc.call(wasm, bytes);
    // 0 is malloc's failure. A block ending in the last RESERVE_BYTES of the heap is refused
    // too (and freed): the kernels' own C++ allocations need that room, and when they fail
    // the module aborts for good.
    const end = (address >>> 0) + bytes;
    if (bytes > 0 && (address === 0 || end > HEAP_MAX_BYTES - RESERVE_BYTES)) {
      if (address !== 0) wasm._free(address);
      throw new WasmHeapFullError(
        `The wasm backend's memory is full: ${mib(bytes)} more asked for, with the heap at ` +
          `${mib(wasm.HEAPU8.length)} (4 GiB at most, ${mib(RESERVE_BYTES)} of it kept for the ` +
          'kernels). Use a smaller batch size, or the cpu backend.',
      );
    }
    return address;
  };
  Object.defineProperty(wasm, '_malloc', {
    configurable: true,
    get: () => guarded,
    set: (f: (bytes: number) => number) => {
      malloc = f;
    },
  });
  guardedModules.add(wasm);
}
