/**
 * The IDX file format of MNIST and Fashion-MNIST: a big-endian header, then raw data.
 *
 *   bytes 0-1  zero
 *   byte  2    element type (0x08 = unsigned byte, the only one these datasets use)
 *   byte  3    number of dimensions d
 *   4*d bytes  each dimension as a big-endian uint32
 *   then       prod(dims) elements, row-major
 *
 * Browser-safe: works on a Uint8Array and uses no Node built-ins. The files are usually
 * distributed gzipped; decompress them first (node:zlib, DecompressionStream, ...).
 */

/** Raised for bytes that are not a well-formed IDX file; the message says what is wrong. */
export class IdxFormatError extends Error {
  override name = 'IdxFormatError';
}

/** A parsed IDX array of unsigned bytes. */
export interface IdxArray {
  shape: number[];
  /** Row-major elements: a view into the bytes given to parseIdx (no copy). */
  data: Uint8Array;
}

export const IDX_UNSIGNED_BYTE = 0x08;

const IDX_TYPE_NAMES: Record<number, string> = {
  0x08: 'unsigned byte',
  0x09: 'signed byte',
  0x0b: 'int16',
  0x0c: 'int32',
  0x0d: 'float32',
  0x0e: 'float64',
};

/** True when the bytes start with the gzip magic number 1f 8b. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Parses an IDX file of unsigned bytes. `source` names the file in error messages.
 * The returned data is a view into `bytes`; copy it if `bytes` will be reused.
 */
export function parseIdx(bytes: Uint8Array, source = 'IDX data'): IdxArray {
  const fail = (problem: string): never => {
    throw new IdxFormatError(`${source}: ${problem}`);
  };
  if (isGzip(bytes)) {
    fail('is gzip-compressed (starts with 1f 8b); decompress it before parsing as IDX.');
  }
  if (bytes.length < 4) {
    fail(`is truncated: ${bytes.length} bytes, too short for the 4-byte IDX magic number.`);
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    fail(
      `bad IDX magic number ${hex(bytes.subarray(0, 4))}: the first two bytes must be zero ` +
        '(is this an IDX file?).',
    );
  }
  const typeCode = bytes[2]!;
  if (typeCode !== IDX_UNSIGNED_BYTE) {
    const known = IDX_TYPE_NAMES[typeCode];
    fail(
      known
        ? `element type 0x${typeCode.toString(16).padStart(2, '0')} (${known}) is not supported; only 0x08 (unsigned byte) is.`
        : `bad IDX magic number ${hex(bytes.subarray(0, 4))}: unknown element type 0x${typeCode.toString(16).padStart(2, '0')}.`,
    );
  }
  const rank = bytes[3]!;
  if (rank === 0) fail('declares 0 dimensions; an IDX array needs at least one.');
  const headerLength = 4 + 4 * rank;
  if (bytes.length < headerLength) {
    fail(
      `is truncated: the header declares ${rank} dimensions (${headerLength} header bytes) ` +
        `but the file has only ${bytes.length} bytes.`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  for (let i = 0; i < rank; i++) shape.push(view.getUint32(4 + 4 * i, false));
  const expected = shape.reduce((a, b) => a * b, 1);
  const actual = bytes.length - headerLength;
  if (actual < expected) {
    fail(
      `is truncated: dimensions [${shape.join(', ')}] need ${expected} data bytes after the ` +
        `${headerLength}-byte header, but only ${actual} are present.`,
    );
  }
  if (actual > expected) {
    fail(
      `size mismatch: dimensions [${shape.join(', ')}] need ${expected} data bytes after the ` +
        `${headerLength}-byte header, but ${actual} are present (${actual - expected} extra).`,
    );
  }
  return { shape, data: bytes.subarray(headerLength) };
}

/** Encodes unsigned bytes as an IDX file (the inverse of parseIdx). */
export function encodeIdx(shape: readonly number[], data: Uint8Array): Uint8Array {
  if (shape.length === 0 || shape.length > 255) {
    throw new RangeError(`IDX needs 1 to 255 dimensions, got ${shape.length}.`);
  }
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0 || d > 0xffffffff) {
      throw new RangeError(`IDX dimensions must be uint32 integers, got [${shape.join(', ')}].`);
    }
  }
  const size = shape.reduce((a, b) => a * b, 1);
  if (size !== data.length) {
    throw new RangeError(
      `IDX dimensions [${shape.join(', ')}] need ${size} elements but ${data.length} were given.`,
    );
  }
  const headerLength = 4 + 4 * shape.length;
  const out = new Uint8Array(headerLength + size);
  const view = new DataView(out.buffer);
  out[2] = IDX_UNSIGNED_BYTE;
  out[3] = shape.length;
  shape.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, headerLength);
  return out;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}
