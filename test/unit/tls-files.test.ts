import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readTlsFiles } from "../../src/server/tls-files.js";
import { testPki } from "../support/kube/test-ca.js";
import { problems } from "../support/errors.js";

const pki = testPki("tls-files");

function files(clientCa: string) {
  const dir = mkdtempSync(join(tmpdir(), "tls-files-"));
  const paths = { certFile: join(dir, "tls.crt"), keyFile: join(dir, "tls.key"), clientCaFile: join(dir, "client-ca.crt") };
  writeFileSync(paths.certFile, pki.serverCertPem);
  writeFileSync(paths.keyFile, pki.serverKeyPem);
  writeFileSync(paths.clientCaFile, clientCa);
  return paths;
}

describe("TLS files", () => {
  it("gives TLS exactly the certificates of the client CA file", () => {
    const material = readTlsFiles(files(`# the ops CA\n${pki.caCertPem}`));
    expect(material.clientCa).toBe(pki.caCertPem.trim() + "\n");
  });

  it("refuses a client CA file without a certificate: Node would take it as no CA and trust the public roots", () => {
    for (const text of ["", "\n", "garbage\n", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]) {
      const paths = files(text);
      const found = problems(() => readTlsFiles(paths));
      expect(found).toHaveLength(1);
      expect(found[0]).toMatch(new RegExp(`^tls\\.clientCaFile: ${paths.clientCaFile} (holds no PEM certificate|certificate 1 of 1 is not a valid X\\.509 certificate)`));
    }
  });
});
