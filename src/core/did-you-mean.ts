/**
 * "did you mean secret_store?" for a mistyped key or word. Names are compared without case and
 * without `_` and `-`, so `secretStore`, `secret-store` and `secret_store` are one name apart
 * from nothing, and a typo is measured in the letters a person actually got wrong.
 */
export function closestName(name: string, known: Iterable<string>): string | undefined {
  const wanted = normalize(name);
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(wanted, normalize(candidate));
    if (best === undefined || distance < best.distance) best = { candidate, distance };
  }
  // Up to a third of the letters wrong (at least one, at most three): closer than that is a typo,
  // further is another word, and suggesting it would mislead.
  const allowed = Math.min(3, Math.max(1, Math.floor(wanted.length / 3)));
  return best && best.distance <= allowed ? best.candidate : undefined;
}

/** `; did you mean X?`, or `; known: A, B, C` when no name is close. */
export function suggestion(name: string, known: readonly string[]): string {
  const close = closestName(name, known);
  return close ? `; did you mean ${close}?` : `; known: ${known.join(", ")}`;
}

/** "unknown key; did you mean port?", or the keys there are when none is close. */
export function unknownName(what: string, name: string, known: readonly string[]): string {
  const close = closestName(name, known);
  return close ? `unknown ${what}; did you mean ${close}?` : `unknown ${what}; expected one of ${known.join(", ")}`;
}

function normalize(name: string): string {
  return name.toLowerCase().replace(/[_-]/g, "");
}

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours. */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = best;
    }
  }
  return rows[a.length]![b.length]!;
}
