/**
 * The agent credential on disk: one JSON file of mode 0600 (a volume the agent owns), written
 * atomically (a temporary file in the same directory, synced, renamed over the old one), so a
 * crash mid-rotation leaves the old credential or the new one, never half of either.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

export const DEFAULT_CREDENTIAL_FILE = "./clusterplane-agent.credential";
const MAX_FILE_BYTES = 64 * 1024;

export interface StoredCredential {
  /** The agent credential, sent as Authorization: Bearer. */
  token: string;
  expireTime: Date;
  /** When the agent received it (its own clock): the start of its lifetime, for rotation. */
  issueTime: Date;
  org: string;
  cluster: string;
  /** The control-plane URL it was issued by. */
  controlPlane: string;
}

export class CredentialFileError extends Error {
  override readonly name = "CredentialFileError";
}

/** The stored credential, or null when there is no file. Throws a CredentialFileError when it cannot be used. */
export function readCredentialFile(path: string): StoredCredential | null {
  let text: string;
  try {
    if (statSync(path).size > MAX_FILE_BYTES) throw new CredentialFileError(`the credential file ${path} is larger than ${MAX_FILE_BYTES} bytes: it is not one the agent wrote`);
    text = readFileSync(path, "utf8");
  } catch (error) {
    if (error instanceof CredentialFileError) throw error;
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new CredentialFileError(`cannot read the credential file ${path}: ${(error as Error).message}`);
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new CredentialFileError(`the credential file ${path} is not JSON: remove it and start the agent with a new join token`);
  }
  const problem = (field: string, what: string) =>
    new CredentialFileError(`the credential file ${path}: ${field} ${what}; remove the file and start the agent with a new join token`);
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw problem("the content", "is not a JSON object");
  const text_ = (field: string, required: boolean): string => {
    const value = raw[field];
    if (value === undefined && !required) return "";
    if (typeof value !== "string" || (required && value === "")) throw problem(field, "must be a non-empty string");
    return value;
  };
  const time = (field: string, fallback?: Date): Date => {
    const value = raw[field];
    if (value === undefined && fallback) return fallback;
    const date = typeof value === "string" ? new Date(value) : new Date(Number.NaN);
    if (Number.isNaN(date.getTime())) throw problem(field, "must be an ISO 8601 time");
    return date;
  };
  const token = text_("token", true);
  if (!/^[\x21-\x7e]+$/.test(token)) throw problem("token", "holds characters a bearer token cannot have");
  return {
    token,
    expireTime: time("expireTime"),
    // A file written by hand without it: its lifetime counts from now.
    issueTime: time("issueTime", new Date()),
    org: text_("org", false),
    cluster: text_("cluster", true),
    controlPlane: text_("controlPlane", false),
  };
}

/** Writes the credential atomically with mode 0600. */
export function writeCredentialFile(path: string, credential: StoredCredential): void {
  const content = `${JSON.stringify(
    {
      token: credential.token,
      expireTime: credential.expireTime.toISOString(),
      issueTime: credential.issueTime.toISOString(),
      org: credential.org,
      cluster: credential.cluster,
      controlPlane: credential.controlPlane,
    },
    null,
    2,
  )}\n`;
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  let fd: number | undefined;
  try {
    // Created 0600 (umask can only take bits away), then set again in case the umask is odd.
    fd = openSync(temporary, "wx", 0o600);
    chmodSync(temporary, 0o600);
    writeSync(fd, content);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(temporary, path);
  } catch (error) {
    if (fd !== undefined) closeSync(fd);
    rmSync(temporary, { force: true });
    throw new CredentialFileError(`cannot write the credential file ${path}: ${(error as Error).message}`);
  }
  syncDirectory(dirname(path));
}

/** The rename is durable only once the directory is synced; some file systems refuse, which is fine. */
function syncDirectory(directory: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(directory, "r");
    fsyncSync(fd);
  } catch {
    // Best effort.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Whether the credential can still be used at `now` (with a minute's margin for clock skew). */
export function isUsable(credential: StoredCredential, now: Date = new Date()): boolean {
  return credential.expireTime.getTime() - now.getTime() > 60_000;
}

/** Whether less than a third of its lifetime is left: then the agent rotates it. */
export function needsRotation(credential: StoredCredential, now: Date = new Date()): boolean {
  const lifetime = credential.expireTime.getTime() - credential.issueTime.getTime();
  const left = credential.expireTime.getTime() - now.getTime();
  return lifetime <= 0 || left < lifetime / 3;
}
