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

/** A line of the tokens file that was refused; the description never repeats the line's text. */
export interface TokenLineProblem {
  line: number;
  description: string;
}

/**
 * Parses a tokens file: one `<token> <role> <name>` per line (the name is the rest of the line),
 * `#` comment lines and blank lines allowed. Only digests are kept. Bad lines are returned by
 * number, and left out; a token on several lines is left out everywhere, since which role was
 * meant cannot be known.
 */
export function parseTokenLines(text: string): { entries: TokenEntry[]; problems: TokenLineProblem[] } {
  const problems: TokenLineProblem[] = [];
  const parsed: (TokenEntry & { line: number })[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const result = parseLine(raw);
    if (typeof result === "string") problems.push({ line: index + 1, description: result });
    else if (result) parsed.push({ ...result, line: index + 1 });
  });
  const firstLine = new Map<string, number>();
  const duplicated = new Set<string>();
  for (const entry of parsed) {
    const key = entry.digest.toString("hex");
    const first = firstLine.get(key);
    if (first === undefined) {
      firstLine.set(key, entry.line);
      continue;
    }
    duplicated.add(key);
    problems.push({ line: entry.line, description: `the same token is already on line ${first}; every token must be unique, so neither line is used` });
  }
  problems.sort((a, b) => a.line - b.line);
  const entries = parsed.filter((entry) => !duplicated.has(entry.digest.toString("hex"))).map(({ digest, role, name }) => ({ digest, role, name }));
  return { entries, problems };
}

/**
 * One line: an entry, null for a blank or comment line, or why it is refused. No field is ever
 * quoted back: with the columns swapped or a space inside a token, any field may be the token.
 */
function parseLine(raw: string): TokenEntry | string | null {
  const line = raw.trim();
  if (line === "" || line.startsWith("#")) return null;
  const fields = line.split(/\s+/);
  const [token = "", role = "", ...rest] = fields;
  if (!role || rest.length === 0) return `expected "<token> <role> <name>", found ${fields.length} field(s)`;
  if (isRole(token) && !isRole(role)) return `the columns are out of order: expected "<token> <role> <name>", the role second`;
  if (token.length < MIN_TOKEN_LENGTH) return `the token is shorter than ${MIN_TOKEN_LENGTH} characters; use a random one (openssl rand -hex 32)`;
  if (!isRole(role)) return `the second field is not a role: use one of ${ROLES.join(", ")}`;
  return { digest: digestOf(token), role, name: rest.join(" ") };
}

/** Parses a whole tokens file strictly (start-up): throws a DomainError naming every bad line as `<source> line N`. */
export function parseTokens(text: string, source: string): TokenEntry[] {
  const { entries, problems } = parseTokenLines(text);
  const violations = new Violations();
  for (const problem of problems) violations.add(`${source} line ${problem.line}`, problem.description);
  violations.throwIfAny();
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
 * the file at most once a second when a token is looked up.
 *
 * Start-up is strict (a missing file or any bad line is an error). A reload fails closed, because
 * a reload is how tokens are revoked: exactly the valid lines of the new file apply, bad lines are
 * logged by number and left out, and a missing or unreadable file means no token is accepted.
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
    this.stamp = stampOf(path);
    this.entries = parseTokens(readStrict(path), path);
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

  /** Re-reads the file if it appeared, disappeared, or its inode, size or modification time changed; true when it was re-read. */
  reloadIfChanged(): boolean {
    const current = stampOf(this.path);
    if (current === this.stamp) return false;
    // Remembered first, so that one bad version is reported once, not on every request.
    this.stamp = current;
    let text: string;
    try {
      text = readFileSync(this.path, "utf8");
    } catch (error) {
      this.entries = [];
      const code = (error as NodeJS.ErrnoException).code ?? "unreadable";
      this.logger.warn({ file: this.path, error: code }, "tokens file missing or unreadable; no token is accepted until it is back");
      return true;
    }
    const { entries, problems } = parseTokenLines(text);
    this.entries = entries;
    if (problems.length === 0) {
      this.logger.info({ file: this.path, tokens: entries.length }, "tokens file reloaded");
    } else {
      const refused = problems.map((problem) => `line ${problem.line}: ${problem.description}`);
      this.logger.warn({ file: this.path, tokens: entries.length, refused }, "tokens file reloaded; malformed lines refused");
    }
    return true;
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

/** What identifies one version of the file; a missing file is a version too, so its return is seen. */
function stampOf(path: string): string {
  try {
    const stat = statSync(path);
    return `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
  } catch (error) {
    return `absent:${(error as NodeJS.ErrnoException).code ?? "unknown"}`;
  }
}

function readStrict(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new DomainError("invalid_argument", `cannot read tokens file ${path}: ${(error as Error).message}`, [
      { field: path, description: `cannot read: ${(error as Error).message}` },
    ]);
  }
}
