/** Seeded shuffling in plain JavaScript, identical on every backend and platform. */

import { mulberry32 } from '../util/mulberry32.js';

export { mulberry32 };

/** A permutation of 0..n-1 (Fisher-Yates); the same seed gives the same permutation. */
export function seededPermutation(n: number, seed: number): Int32Array {
  const random = mulberry32(seed);
  const order = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}
