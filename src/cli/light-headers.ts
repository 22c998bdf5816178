/**
 * connect's client builds every header set of a call with the global `Headers`. In Node 20 the
 * first touch of that global loads all of undici (fetch, agents, pools): about 20 ms, a sixth of
 * the life of a command such as `clusterplane get cluster`. The CLI never uses fetch, so its
 * operator commands get this map instead, with the Fetch standard's semantics for what connect
 * does with headers: case-insensitive names, values combined with ", ", sorted iteration.
 */
export class LightHeaders implements Headers {
  readonly #values = new Map<string, string[]>();

  constructor(init?: HeadersInit) {
    if (init === undefined) return;
    const pairs = Symbol.iterator in Object(init) ? (init as Iterable<[string, string]>) : Object.entries(init as Record<string, string>);
    for (const [name, value] of pairs) this.append(name, value);
  }

  append(name: string, value: string): void {
    const key = name.toLowerCase();
    const values = this.#values.get(key);
    if (values) values.push(normalize(value));
    else this.#values.set(key, [normalize(value)]);
  }

  delete(name: string): void {
    this.#values.delete(name.toLowerCase());
  }

  get(name: string): string | null {
    return this.#values.get(name.toLowerCase())?.join(", ") ?? null;
  }

  getSetCookie(): string[] {
    return [...(this.#values.get("set-cookie") ?? [])];
  }

  has(name: string): boolean {
    return this.#values.has(name.toLowerCase());
  }

  set(name: string, value: string): void {
    this.#values.set(name.toLowerCase(), [normalize(value)]);
  }

  forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    for (const [key, value] of this) callback.call(thisArg, value, key, this);
  }

  *entries(): HeadersIterator<[string, string]> {
    for (const key of [...this.#values.keys()].sort()) {
      const values = this.#values.get(key)!;
      // Set-Cookie is the one header whose values are never combined.
      if (key === "set-cookie") for (const value of values) yield [key, value];
      else yield [key, values.join(", ")];
    }
  }

  *keys(): HeadersIterator<string> {
    for (const [key] of this.entries()) yield key;
  }

  *values(): HeadersIterator<string> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): HeadersIterator<[string, string]> {
    return this.entries();
  }

  get [Symbol.toStringTag](): string {
    return "Headers";
  }
}

/** Leading and trailing HTTP whitespace is not part of a value. */
function normalize(value: string): string {
  return String(value).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, "");
}

/**
 * Puts LightHeaders in place of the global `Headers`, unless something has already loaded the
 * built-in (then it costs nothing more, and two kinds of Headers would only confuse).
 */
export function useLightHeaders(): void {
  const builtin = Object.getOwnPropertyDescriptor(globalThis, "Headers");
  if (!builtin?.get) return;
  Object.defineProperty(globalThis, "Headers", { value: LightHeaders, writable: true, configurable: true, enumerable: false });
}
