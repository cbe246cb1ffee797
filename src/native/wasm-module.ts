/**
 * The few pieces of WebAssembly's binary format that the hand-written SIMD update loops
 * (adam-simd.ts, adahessian-simd.ts) need: LEB128 integers, sections, locals and opcodes, and a
 * module of one exported function with one exported memory. There is no WebAssembly toolchain
 * in this project, so those modules are written out byte by byte with these (the WebAssembly
 * core and SIMD specifications give each opcode).
 */

/** Unsigned LEB128. */
export const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
};

/** Signed LEB128 of a non-negative i32 constant. */
export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if (n === 0 && (byte & 0x40) === 0) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
/** A vector: its length, then its items. */
export const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const name = (s: string) => [...uleb(s.length), ...[...s].map((c) => c.charCodeAt(0))];

// Value types.
export const I32 = 0x7f;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;

// Instructions.
export const get = (i: number) => [0x20, ...uleb(i)]; // local.get
export const set = (i: number) => [0x21, ...uleb(i)]; // local.set
export const i32Const = (n: number) => [0x41, n]; // small non-negative n only (< 64)
export const I32_ADD = [0x6a];
export const I32_SHL = [0x74];
export const I32_GE_U = [0x4f];
export const SIMD = (op: number) => [0xfd, ...uleb(op)];
export const LOAD = [...SIMD(0x00), 4, 0]; // v128.load, align 2^4, offset 0
export const STORE = [...SIMD(0x0b), 4, 0]; // v128.store

/**
 * A module exporting one function `exportName` of type (params) -> () with the given locals
 * (vec of [count, type]) and code (ending in `end`), and its memory of `pages` 64 KiB pages as
 * 'mem'; with `importMemory`, the memory is imported as env.mem (at least `pages`) instead,
 * so that several modules can work on one memory.
 */
export function oneFunctionModule(spec: {
  exportName: string;
  params: number[];
  locals: number[][];
  code: number[];
  pages: number;
  importMemory?: boolean;
}): Uint8Array<ArrayBuffer> {
  const body = [...vec(spec.locals), ...spec.code];
  const type = [0x60, ...vec(spec.params.map((t) => [t])), ...vec([])];
  const memory = spec.importMemory
    ? section(2, vec([[...name('env'), ...name('mem'), 0x02, 0x00, ...uleb(spec.pages)]]))
    : [];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec([type])),
    ...memory,
    ...section(3, vec([[0]])),
    ...(spec.importMemory ? [] : section(5, vec([[0x00, ...uleb(spec.pages)]]))),
    ...section(
      7,
      vec([
        ...(spec.importMemory ? [] : [[...name('mem'), 0x02, 0]]),
        [...name(spec.exportName), 0x00, 0],
      ]),
    ),
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ]);
}

/**
 * Compiles and instantiates a oneFunctionModule (with `memory` as env.mem where it imports
 * one); throws where the engine cannot (no WebAssembly, or no SIMD: the module does not
 * validate).
 */
export function instantiateOneFunction(
  bytes: Uint8Array<ArrayBuffer>,
  exportName: string,
  memory?: WebAssembly.Memory,
): { memory: WebAssembly.Memory; run: (...args: number[]) => void } {
  if (typeof WebAssembly !== 'object' || !WebAssembly.validate(bytes)) {
    throw new Error('no WebAssembly SIMD');
  }
  const imports: WebAssembly.Imports = memory == null ? {} : { env: { mem: memory } };
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), imports);
  return {
    memory: memory ?? (instance.exports['mem'] as WebAssembly.Memory),
    run: instance.exports[exportName] as (...args: number[]) => void,
  };
}
