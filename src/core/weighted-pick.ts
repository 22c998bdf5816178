import { fnv1a64 } from "./fnv.js";

export interface WeightedChoice {
  name: string;
  weight: number;
}

/** Sorts choices by name: the order weightedPick needs. */
export function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * Picks one choice with probability proportional to its weight, deterministically from `seed`
 * (an execution id): the same seed and the same choices always give the same answer. Choices
 * must be sorted by name so the answer does not depend on the order they were stored in.
 *
 * The seed's FNV-1a hash is run through a finalizer before use: FNV-1a alone leaves similar ids
 * ("exec-1", "exec-2", ...) with correlated high bits, which would skew the shares.
 */
export function weightedPick<T extends WeightedChoice>(choices: readonly T[], seed: string): T | undefined {
  if (choices.length <= 1) return choices[0];
  let total = 0;
  for (const choice of choices) total += choice.weight;
  const [high, low] = fnv1a64(seed);
  let target = unitInterval(high, low) * total;
  for (const choice of choices) {
    target -= choice.weight;
    if (target < 0) return choice;
  }
  return choices[choices.length - 1];
}

/** Maps a 64-bit hash to [0, 1) with well-mixed bits (murmur3's fmix32 on both halves). */
function unitInterval(high: number, low: number): number {
  return fmix32(high ^ fmix32(low)) / 0x1_0000_0000;
}

function fmix32(value: number): number {
  let h = value;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
