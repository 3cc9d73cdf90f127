/** Test support, not published: a small deterministic PRNG for fuzzing (mulberry32). */

/**
 * Returns a generator of numbers in [0, 1), the same sequence for the same seed.
 *
 * @param seed Any 32-bit integer.
 * @returns The next number on each call.
 */
export function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
