/**
 * Seeded Rademacher probes (entries +1 or -1, each with probability 1/2) for Hutchinson's
 * estimator. The generator is plain JavaScript (xoshiro128**, seeded through splitmix32) so
 * that its whole state is four 32-bit words: small enough to save with the optimizer and
 * restore bit for bit, and independent of the backend's own random ops.
 */

/** The generator state: four unsigned 32-bit words, never all zero. */
export type RademacherState = [number, number, number, number];

export class RademacherGenerator {
  private s: RademacherState;

  constructor(seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new RangeError(`The probe seed must be an integer in [0, 2^32 - 1], got ${seed}.`);
    }
    // splitmix32 spreads one seed over four well-mixed, non-zero words.
    let x = seed >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s = [next(), next(), next(), next()];
    if (this.s.every((w) => w === 0)) this.s[0] = 1;
  }

  /** A copy of the state, for saving. */
  get state(): RademacherState {
    return [...this.s];
  }

  set state(words: RademacherState) {
    if (
      !Array.isArray(words) ||
      words.length !== 4 ||
      !words.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff) ||
      words.every((w) => w === 0)
    ) {
      throw new RangeError(
        `A Rademacher generator state is four unsigned 32-bit integers, not all zero; got [${String(words)}].`,
      );
    }
    this.s = [words[0], words[1], words[2], words[3]];
  }

  /** The next 32 random bits (xoshiro128**). */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] = (s[2] ^ s[0]) >>> 0;
    s[3] = (s[3] ^ s[1]) >>> 0;
    s[1] = (s[1] ^ s[2]) >>> 0;
    s[0] = (s[0] ^ s[3]) >>> 0;
    s[2] = (s[2] ^ t) >>> 0;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /**
   * `n` signs, one bit each. Every call starts on a fresh 32-bit word, so the state after a
   * call depends only on the state before it and on n.
   */
  signs(n: number): Float32Array {
    return this.signsInto(new Float32Array(n));
  }

  /**
   * `signs(out.length)` written into `out` (every element): the same values and state. Bit j
   * of a word is sign 32 k + j of its run: 1 gives +1, 0 gives -1.
   */
  signsInto(out: Float32Array): Float32Array {
    const n = out.length;
    const whole = n - (n & 31);
    let i = 0;
    if (out.byteOffset % 8 === 0) {
      // Whole words a byte at a time, the byte's eight float32 bit patterns (+1 or -1) as four
      // float64 stores of pairs from a table (no arithmetic per sign, half the stores of one
      // float32 each: 0.39 -> 0.16 ms for a small CNN's 207k signs). The pairs are ordinary
      // doubles (exponent 0x3f8 or 0xbf8, never NaN), so a float64 copy keeps their bits.
      const pairs = new Float64Array(out.buffer, out.byteOffset, n >> 1);
      for (; i < whole; i += 32) {
        const word = this.nextUint32();
        const o = i >> 1;
        // Written out byte by byte: V8 does not unroll the loop over the four bytes.
        let t = (word & 255) << 2;
        pairs[o] = SIGN_PAIRS[t]!;
        pairs[o + 1] = SIGN_PAIRS[t + 1]!;
        pairs[o + 2] = SIGN_PAIRS[t + 2]!;
        pairs[o + 3] = SIGN_PAIRS[t + 3]!;
        t = ((word >>> 8) & 255) << 2;
        pairs[o + 4] = SIGN_PAIRS[t]!;
        pairs[o + 5] = SIGN_PAIRS[t + 1]!;
        pairs[o + 6] = SIGN_PAIRS[t + 2]!;
        pairs[o + 7] = SIGN_PAIRS[t + 3]!;
        t = ((word >>> 16) & 255) << 2;
        pairs[o + 8] = SIGN_PAIRS[t]!;
        pairs[o + 9] = SIGN_PAIRS[t + 1]!;
        pairs[o + 10] = SIGN_PAIRS[t + 2]!;
        pairs[o + 11] = SIGN_PAIRS[t + 3]!;
        t = (word >>> 24) << 2;
        pairs[o + 12] = SIGN_PAIRS[t]!;
        pairs[o + 13] = SIGN_PAIRS[t + 1]!;
        pairs[o + 14] = SIGN_PAIRS[t + 2]!;
        pairs[o + 15] = SIGN_PAIRS[t + 3]!;
      }
    } else {
      // A view not 8-byte aligned: one float32 bit pattern at a time from the same table.
      const bits = new Uint32Array(out.buffer, out.byteOffset, n);
      for (; i < whole; i += 32) {
        const word = this.nextUint32();
        for (let k = 0; k < 32; k += 8) {
          const t = ((word >>> k) & 255) << 3;
          for (let j = 0; j < 8; j++) bits[i + k + j] = SIGN_BITS[t + j]!;
        }
      }
    }
    if (i < n) {
      // The last word's first n mod 32 bits (its other bits are not used).
      const word = this.nextUint32();
      for (let j = 0; i < n; i++, j++) out[i] = ((word >>> j) & 1) * 2 - 1;
    }
    return out;
  }
}

/** For each byte b and bit j: the float32 bits of +1 where bit j of b is set, else of -1. */
const SIGN_BITS = new Uint32Array(256 * 8);
for (let b = 0; b < 256; b++) {
  for (let j = 0; j < 8; j++) SIGN_BITS[b * 8 + j] = (b >>> j) & 1 ? 0x3f800000 : 0xbf800000;
}
/** The same table as float64: element 4 b + p holds the same eight bytes as signs 2p, 2p + 1. */
const SIGN_PAIRS = new Float64Array(SIGN_BITS.buffer);

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
