import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import { CredentialFileError, parseCaBundle } from "../sync/credential-files.js";
import { Violations } from "../core/errors.js";
import type { TlsMaterial } from "./one-port.js";

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  clientCaFile?: string;
}

/** How each file is called in messages: the config key, flag or variable it came from. */
export interface TlsFileNames {
  certFile: string;
  keyFile: string;
  clientCaFile: string;
}

const KEYS: TlsFileNames = { certFile: "tls.certFile", keyFile: "tls.keyFile", clientCaFile: "tls.clientCaFile" };

/**
 * Reads the certificate, key and client CA, and checks that OpenSSL accepts them together (PEM
 * that parses, a key that matches the certificate). Throws a DomainError naming each bad file.
 */
export function readTlsFiles(files: TlsFiles, names: TlsFileNames = KEYS): TlsMaterial {
  const problems = new Violations();
  const read = (key: keyof TlsFileNames, path: string | undefined) => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path, "utf8");
    } catch (error) {
      problems.add(names[key], `cannot read ${path}: ${(error as Error).message}`);
      return undefined;
    }
  };
  const cert = read("certFile", files.certFile);
  const key = read("keyFile", files.keyFile);
  const clientCa = read("clientCaFile", files.clientCaFile);
  problems.throwIfAny();
  const material: TlsMaterial = { cert: cert!, key: key!, clientCa: undefined };
  try {
    createSecureContext({ cert: material.cert });
  } catch (error) {
    problems.add(names.certFile, `${files.certFile} is not a PEM certificate OpenSSL accepts (${(error as Error).message})`);
  }
  if (clientCa !== undefined) material.clientCa = checkClientCa(clientCa, files.clientCaFile!, names.clientCaFile, problems);
  if (problems.isEmpty) {
    try {
      createSecureContext({ cert: material.cert, key: material.key });
    } catch (error) {
      const reason = (error as Error).message;
      problems.add(
        names.keyFile,
        /mismatch/i.test(reason)
          ? `${files.keyFile} is not the private key of the certificate in ${files.certFile} (${reason})`
          : `${files.keyFile} is not a PEM private key OpenSSL accepts (${reason})`,
      );
    }
  }
  problems.throwIfAny();
  return material;
}

/**
 * The client CA bundle, or undefined with a problem added. An empty one must be refused: Node takes
 * `ca: ""` as "no CA given" and would verify client certificates against the public roots.
 */
function checkClientCa(text: string, path: string, name: string, problems: Violations): string | undefined {
  try {
    const bundle = parseCaBundle(text, path);
    createSecureContext({ ca: bundle });
    return bundle;
  } catch (error) {
    const reason = error instanceof CredentialFileError ? error.description : `is not a PEM CA certificate OpenSSL accepts (${(error as Error).message})`;
    problems.add(name, `${path} ${reason}`);
    return undefined;
  }
}
