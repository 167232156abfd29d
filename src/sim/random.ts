/** mulberry32: a small, fast, seedable PRNG; the same seed gives the same sequence. */
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

/** One round of the integer hash. */
function mix(h: number, x: number): number {
  h ^= x | 0;
  h = Math.imul(h, 0x01000193);
  h ^= h >>> 13;
  return Math.imul(h, 0x5bd1e995);
}

/** A hash of three integers to [0, 1), for value noise that depends only on its inputs (no allocation: it runs for every GPU every step). */
export function hash01(a: number, b: number, c: number): number {
  let h = mix(mix(mix(0x811c9dc5, a), b), c);
  h ^= h >>> 15;
  return (h >>> 0) / 4294967296;
}

/** Smooth value noise in [-1, 1] along `t` (cosine interpolation of hashed lattice points). */
export function smoothNoise(seed: number, stream: number, t: number): number {
  const i = Math.floor(t);
  const f = t - i;
  const a = hash01(seed, stream, i) * 2 - 1;
  const b = hash01(seed, stream, i + 1) * 2 - 1;
  const w = (1 - Math.cos(Math.PI * f)) / 2;
  return a * (1 - w) + b * w;
}
