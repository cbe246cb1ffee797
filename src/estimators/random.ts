/**
 * Seeded random numbers for probes and start vectors, drawn in JavaScript so that the same
 * seed gives the same vectors on every backend (TF.js's own seeded ops differ by backend
 * in how they consume the seed).
 */

import { mulberry32 } from '../util/mulberry32.js';

/** A small, fast 32-bit generator (mulberry32); uniform in [0, 1). */
export class SeededRandom {
  private readonly next: () => number;

  constructor(seed: number) {
    if (!Number.isFinite(seed))
      throw new Error(`The random seed must be a finite number, got ${seed}.`);
    // Mix the seed so that nearby seeds (0, 1, 2...) start far apart.
    this.next = mulberry32((Math.floor(seed) ^ 0x9e3779b9) >>> 0);
    for (let i = 0; i < 4; i++) this.uniform();
  }

  uniform(): number {
    return this.next();
  }

  /** n entries, each +1 or -1 with probability 1/2. */
  rademacher(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.uniform() < 0.5 ? -1 : 1;
    return out;
  }

  /** n standard normal entries (Box-Muller). */
  normal(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const u = 1 - this.uniform(); // in (0, 1], so log(u) is finite
      const r = Math.sqrt(-2 * Math.log(u));
      const angle = 2 * Math.PI * this.uniform();
      out[i] = r * Math.cos(angle);
      if (i + 1 < n) out[i + 1] = r * Math.sin(angle);
    }
    return out;
  }
}
