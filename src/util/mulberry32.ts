/**
 * mulberry32: a tiny, fast 32-bit generator, uniform floats in [0, 1). Plain JavaScript, so
 * the same seed gives the same stream on every backend and platform (TF.js's seeded ops
 * consume seeds differently per backend). Shared by data shuffling and the estimators' probes.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
