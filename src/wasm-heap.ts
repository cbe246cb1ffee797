/**
 * The wasm backend's heap holds at most 4 GiB (wasm32). When it is full, emscripten's malloc
 * returns 0 and TF.js's wasm backend registers the tensor at address 0 anyway: the next kernel
 * overwrites the start of the heap and the process dies later, far from the cause, with
 * "RuntimeError: memory access out of bounds". The guard makes the allocation itself throw
 * WasmHeapFullError, saying how much was asked for and how large the heap is, before anything is
 * written. (Allocations inside the wasm module's C++ code are beyond its reach.)
 */
import { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

export class WasmHeapFullError extends Error {
  override name = 'WasmHeapFullError';
}

interface WasmModule {
  _malloc(bytes: number): number;
  HEAPU8: Uint8Array;
}

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
  const malloc = wasm._malloc.bind(wasm);
  wasm._malloc = (bytes: number) => {
    const address = malloc(bytes);
    if (address === 0 && bytes > 0) {
      throw new WasmHeapFullError(
        `The wasm backend's memory is full: ${mib(bytes)} more asked for, with the heap at ` +
          `${mib(wasm.HEAPU8.length)} (4 GiB at most). Use a smaller batch size, or the cpu backend.`,
      );
    }
    return address;
  };
  guardedModules.add(wasm);
}
