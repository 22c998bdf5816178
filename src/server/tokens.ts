import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync, statSync, watch, type FSWatcher } from "node:fs";
import { basename, dirname } from "node:path";
import { DomainError, Violations } from "../core/errors.js";
import { isRole, ROLES, type Role } from "../core/roles.js";

/** One line of the tokens file, with the token itself reduced to its SHA-256 digest. */
export interface TokenEntry {
  digest: Buffer;
  role: Role;
  name: string;
}

/** Who a token belongs to. */
export interface TokenOwner {
  name: string;
  role: Role;
}

/** Shorter tokens are refused: a bearer token is a password and must not be guessable. */
export const MIN_TOKEN_LENGTH = 16;

export function digestOf(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

/**
 * Parses a tokens file: one `<token> <role> <name>` per line (the name is the rest of the line),
 * `#` comment lines and blank lines allowed. Only digests are kept. Throws a DomainError naming
 * every bad line as `<source> line N`; messages never repeat a token.
 */
export function parseTokens(text: string, source: string): TokenEntry[] {
  const problems = new Violations();
  const entries: TokenEntry[] = [];
  const seen = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const at = `${source} line ${index + 1}`;
    const [token = "", role = "", ...rest] = line.split(/\s+/);
    const name = rest.join(" ");
    if (!role || !name) {
      problems.add(at, `expected "<token> <role> <name>", found ${line.split(/\s+/).length} field(s)`);
      return;
    }
    if (token.length < MIN_TOKEN_LENGTH) {
      problems.add(at, `the token is shorter than ${MIN_TOKEN_LENGTH} characters; use a random one (openssl rand -hex 32)`);
      return;
    }
    if (!isRole(role)) {
      problems.add(at, `role "${role}" is not one of ${ROLES.join(", ")}`);
      return;
    }
    const digest = digestOf(token);
    const key = digest.toString("hex");
    const first = seen.get(key);
    if (first !== undefined) {
      problems.add(at, `the same token is already on line ${first}; every token must be unique`);
      return;
    }
    seen.set(key, index + 1);
    entries.push({ digest, role, name });
  });
  problems.throwIfAny();
  return entries;
}

/** Finds the owner of `token`, comparing digests in constant time and always scanning every entry. */
export function findToken(entries: readonly TokenEntry[], token: string): TokenOwner | undefined {
  const digest = digestOf(token);
  let found: TokenEntry | undefined;
  for (const entry of entries) {
    // No early exit: the time taken does not depend on where (or whether) the token matched.
    if (timingSafeEqual(digest, entry.digest) && !found) found = entry;
  }
  return found ? { name: found.name, role: found.role } : undefined;
}

export interface TokenFileLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

/**
 * The tokens file, re-read when it changes: `fs.watch` on its directory (which also sees the
 * symlink swap of a mounted Kubernetes Secret) and, in case a watch event is missed, a stat of
 * the file at most once a second when a token is looked up. A reload that fails (a malformed
 * line, a missing file) keeps the previous tokens and logs a warning.
 */
export class TokenFile {
  private entries: TokenEntry[];
  private stamp: string;
  private lastCheck = Date.now();
  private readonly watcher: FSWatcher | null;
  private pending: NodeJS.Timeout | null = null;

  /** Reads the file now; throws a DomainError when it is missing or malformed. */
  constructor(
    readonly path: string,
    private readonly logger: TokenFileLogger,
    private readonly checkIntervalMs = 1_000,
  ) {
    const { entries, stamp } = read(path);
    this.entries = entries;
    this.stamp = stamp;
    this.watcher = this.watch();
  }

  get size(): number {
    return this.entries.length;
  }

  /** The owner of `token`, or undefined. */
  lookup(token: string): TokenOwner | undefined {
    const now = Date.now();
    if (now - this.lastCheck >= this.checkIntervalMs) {
      this.lastCheck = now;
      this.reloadIfChanged();
    }
    return findToken(this.entries, token);
  }

  /** Re-reads the file if its modification time, size or inode changed; true when new tokens were loaded. */
  reloadIfChanged(): boolean {
    let current: string;
    try {
      current = stampOf(this.path);
    } catch (error) {
      this.logger.warn({ file: this.path, error: (error as Error).message }, "tokens file unreadable; keeping the previous tokens");
      return false;
    }
    if (current === this.stamp) return false;
    try {
      const { entries, stamp } = read(this.path);
      this.entries = entries;
      this.stamp = stamp;
      this.logger.info({ file: this.path, tokens: entries.length }, "tokens file reloaded");
      return true;
    } catch (error) {
      // Remember the stamp so one bad version is reported once, not on every request.
      this.stamp = current;
      this.logger.warn({ file: this.path, error: (error as Error).message }, "tokens file rejected; keeping the previous tokens");
      return false;
    }
  }

  close(): void {
    this.watcher?.close();
    if (this.pending) clearTimeout(this.pending);
  }

  private watch(): FSWatcher | null {
    const name = basename(this.path);
    try {
      const watcher = watch(dirname(this.path), { persistent: false }, (_event, changed) => {
        // Kubernetes swaps a `..data` symlink; editors write temporary files and rename them.
        if (changed !== null && changed !== name && !changed.startsWith("..")) return;
        if (this.pending) clearTimeout(this.pending);
        this.pending = setTimeout(() => {
          this.pending = null;
          this.reloadIfChanged();
        }, 50);
        this.pending.unref();
      });
      watcher.on("error", () => watcher.close());
      return watcher;
    } catch {
      return null; // Not every file system can be watched; the stat on lookup still notices changes.
    }
  }
}

function stampOf(path: string): string {
  const stat = statSync(path);
  return `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
}

function read(path: string): { entries: TokenEntry[]; stamp: string } {
  let text: string;
  let stamp: string;
  try {
    stamp = stampOf(path);
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new DomainError("invalid_argument", `cannot read tokens file ${path}: ${(error as Error).message}`, [
      { field: path, description: `cannot read: ${(error as Error).message}` },
    ]);
  }
  return { entries: parseTokens(text, path), stamp };
}
