import { X509Certificate } from "node:crypto";
import { closeSync, constants, fstatSync, openSync, readSync, realpathSync, statSync, type Stats } from "node:fs";
import { isAbsolute, relative, sep } from "node:path";

/** Far above any real bearer token (a service-account JWT is a few KiB). */
export const MAX_TOKEN_FILE_BYTES = 64 * 1024;
/** Far above any real CA bundle (the whole Mozilla store is about 220 KiB). */
export const MAX_CA_FILE_BYTES = 1024 * 1024;

export type CredentialProblem = "missing" | "unreadable" | "outside" | "not_a_file" | "too_large" | "empty" | "malformed" | "no_certificate";

/**
 * A credential file that must not be used. The message names the file and the problem, never its
 * contents: it ends up in sync status, which viewers may read.
 */
export class CredentialFileError extends Error {
  override readonly name = "CredentialFileError";

  constructor(
    readonly path: string,
    readonly problem: CredentialProblem,
    readonly description: string,
  ) {
    super(`credential file ${path}: ${description}`);
  }
}

/**
 * Reads a file that must lie in one of `directories` once every symbolic link is followed, and
 * be a regular file of at most `maxBytes`. Both the file and the directories are resolved now,
 * not when the path was registered: credentials are mounted and rotated behind our back.
 */
export function readConfinedFile(path: string, directories: readonly string[], maxBytes: number): Buffer {
  const real = confinedRealPath(path, directories);
  const fd = openForReading(path, real);
  try {
    const stats = fstatSync(fd);
    checkRegularFile(path, stats, maxBytes);
    // Between the check and the open a directory on the way may have been swapped for a link.
    if (!sameFile(stats, statSync(confinedRealPath(path, directories)))) {
      throw new CredentialFileError(path, "unreadable", "changed while being read; it is read again on the next attempt");
    }
    return readAtMost(path, fd, stats.size, maxBytes);
  } finally {
    closeSync(fd);
  }
}

/** The real path of `path`, refused unless it lies inside one of the (real) `directories`. */
function confinedRealPath(path: string, directories: readonly string[]): string {
  const real = realPath(path);
  const roots = directories.flatMap((dir) => {
    try {
      return [realpathSync.native(dir)];
    } catch {
      return []; // A directory that does not exist holds no credentials.
    }
  });
  if (!roots.some((root) => isInside(real, root))) {
    throw new CredentialFileError(
      path,
      "outside",
      `resolves (through a symbolic link) to a file outside the credential directories (${directories.join(", ")}); ` +
        "point the path at the file itself inside one of them, or add its real directory to sync.credentialDirectories",
    );
  }
  return real;
}

/**
 * The kernel's view of the path. Node's JavaScript realpath first removes `dir/..` as text, which
 * is wrong when `dir` is a symbolic link; the native one resolves it as open() would.
 */
function realPath(path: string): string {
  try {
    return realpathSync.native(path);
  } catch (error) {
    throw accessError(path, error);
  }
}

function isInside(file: string, directory: string): boolean {
  const rest = relative(directory, file);
  return rest !== "" && rest !== ".." && !rest.startsWith(`..${sep}`) && !isAbsolute(rest);
}

/** Non-blocking, so that a FIFO planted in the directory cannot hang the caller at open(). */
function openForReading(path: string, real: string): number {
  try {
    return openSync(real, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOFOLLOW ?? 0));
  } catch (error) {
    throw accessError(path, error);
  }
}

function checkRegularFile(path: string, stats: Stats, maxBytes: number): void {
  if (!stats.isFile()) throw new CredentialFileError(path, "not_a_file", "is not a regular file");
  if (stats.size > maxBytes) throw tooLarge(path, maxBytes);
}

function sameFile(a: Stats, b: Stats): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/** Reads up to one byte more than allowed, so that a file that grew after fstat is still refused. */
function readAtMost(path: string, fd: number, size: number, maxBytes: number): Buffer {
  const buffer = Buffer.alloc(Math.min(size, maxBytes) + 1);
  let length = 0;
  while (length < buffer.length) {
    const n = readSync(fd, buffer, length, buffer.length - length, null);
    if (n === 0) break;
    length += n;
  }
  if (length > maxBytes) throw tooLarge(path, maxBytes);
  return buffer.subarray(0, length);
}

function tooLarge(path: string, maxBytes: number): CredentialFileError {
  return new CredentialFileError(path, "too_large", `is larger than ${maxBytes} bytes, far more than a credential; check that it is the right file`);
}

function accessError(path: string, error: unknown): CredentialFileError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT" || code === "ENOTDIR") return new CredentialFileError(path, "missing", "does not exist (is the Secret mounted?)");
  if (code === "EACCES" || code === "EPERM") return new CredentialFileError(path, "unreadable", "cannot be read by the server (permission denied)");
  if (code === "ELOOP") return new CredentialFileError(path, "unreadable", "changed while being read, or has a loop of symbolic links");
  return new CredentialFileError(path, "unreadable", `cannot be read (${code ?? "unknown error"})`);
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]*-----END CERTIFICATE-----/g;

/**
 * The certificates of a PEM bundle, each checked to parse, joined again: exactly what was checked
 * is what TLS is given. Text between blocks (bundle comments) is dropped. Refuses a bundle without
 * a certificate, because Node treats an empty CA as "no CA given" and falls back to the public
 * roots, which would hand the token to anyone with a publicly trusted certificate.
 */
export function parseCaBundle(text: string, path: string): string {
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) {
    throw new CredentialFileError(
      path,
      "no_certificate",
      "holds no PEM certificate (-----BEGIN CERTIFICATE-----); an empty CA would mean trusting every public CA instead, so it is refused",
    );
  }
  blocks.forEach((block, index) => {
    try {
      new X509Certificate(block);
    } catch {
      throw new CredentialFileError(path, "no_certificate", `certificate ${index + 1} of ${blocks.length} is not a valid X.509 certificate`);
    }
  });
  return `${blocks.join("\n")}\n`;
}
