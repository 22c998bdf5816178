import { createPrivateKey, generateKeyPairSync, X509Certificate } from "node:crypto";
import forge from "node-forge";

/**
 * A throwaway PKI for tests: a self-signed CA and a server certificate it
 * signed for 127.0.0.1 / localhost. Key generation is the slow part (tens of
 * milliseconds with node-forge's native path), so each named PKI is made once
 * per process and cached.
 */
export interface TestPki {
  /** PEM of the self-signed CA certificate: what a client trusts. */
  caCertPem: string;
  caKeyPem: string;
  /** PEM of the server certificate (SAN: IP 127.0.0.1, DNS localhost). */
  serverCertPem: string;
  serverKeyPem: string;
}

const cache = new Map<string, TestPki>();

/**
 * The PKI called `name`, created on first use. Different names give unrelated
 * CAs, which is how a test makes a server present a certificate the client's
 * CA does not vouch for.
 */
export function testPki(name = "stand-in"): TestPki {
  let pki = cache.get(name);
  if (!pki) {
    pki = createTestPki(name);
    cache.set(name, pki);
  }
  return pki;
}

function createTestPki(name: string): TestPki {
  const ca = createCa(`${name} test CA`);
  const server = issueServerCertificate(ca, { commonName: `${name} apiserver`, ips: ["127.0.0.1"], dnsNames: ["localhost"] });
  const caPems = checkedPems(ca.cert, ca.keys);
  return {
    caCertPem: caPems.certPem,
    caKeyPem: caPems.keyPem,
    serverCertPem: server.certPem,
    serverKeyPem: server.keyPem,
  };
}

interface Ca {
  cert: forge.pki.Certificate;
  keys: forge.pki.rsa.KeyPair & { pem: string };
}

/**
 * An RSA key pair made by Node's OpenSSL and handed to forge for signing. forge's own key export
 * sometimes writes non-minimal DER integers, which OpenSSL 3 refuses ("illegal padding").
 */
function generateKeys(): forge.pki.rsa.KeyPair & { pem: string } {
  const { privateKey: pem } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  const privateKey = forge.pki.privateKeyFromPem(pem) as forge.pki.rsa.PrivateKey;
  return { privateKey, publicKey: forge.pki.setRsaPublicKey(privateKey.n, privateKey.e), pem };
}

/** The PEMs of a forge-signed certificate and its Node-made key, checked to load in OpenSSL. */
function checkedPems(cert: forge.pki.Certificate, keys: { pem: string }): { certPem: string; keyPem: string } {
  const certPem = forge.pki.certificateToPem(cert);
  new X509Certificate(certPem);
  createPrivateKey(keys.pem);
  return { certPem, keyPem: keys.pem };
}

function createCa(commonName: string): Ca {
  const keys = generateKeys();
  const cert = baseCertificate(keys.publicKey, commonName);
  cert.setIssuer(cert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { cert, keys };
}

interface ServerCertificateRequest {
  commonName: string;
  ips: string[];
  dnsNames: string[];
}

/** A leaf certificate for a TLS server, signed by `ca`. */
function issueServerCertificate(ca: Ca, request: ServerCertificateRequest): { certPem: string; keyPem: string } {
  const keys = generateKeys();
  const cert = baseCertificate(keys.publicKey, request.commonName);
  cert.setIssuer(ca.cert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true },
    {
      name: "subjectAltName",
      // type 7 = iPAddress, type 2 = dNSName (RFC 5280 GeneralName tags).
      altNames: [...request.ips.map((ip) => ({ type: 7, ip })), ...request.dnsNames.map((value) => ({ type: 2, value }))],
    },
  ]);
  cert.sign(ca.keys.privateKey, forge.md.sha256.create());
  return checkedPems(cert, keys);
}

function baseCertificate(publicKey: forge.pki.PublicKey, commonName: string): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // A positive serial in minimal DER: the first byte between 0x01 and 0x7f needs no 0x00 before it.
  const serial = forge.random.getBytesSync(16);
  cert.serialNumber = forge.util.bytesToHex(String.fromCharCode((serial.charCodeAt(0) & 0x7f) | 0x01) + serial.slice(1));
  // Backdated an hour so small clock differences never make it "not yet valid".
  cert.validity.notBefore = new Date(Date.now() - 60 * 60 * 1000);
  cert.validity.notAfter = new Date(Date.now() + 365 * 24 * 60 * 60 * 1000);
  cert.setSubject([{ name: "commonName", value: commonName }]);
  return cert;
}

/** A client certificate and its key (PEM), for mutual TLS. */
export interface TestClientCertificate {
  certPem: string;
  keyPem: string;
}

const clientCache = new Map<string, TestClientCertificate>();

/**
 * A client certificate with subject CN `commonName`, signed by the CA of the PKI called
 * `pkiName` (see testPki); made once per process and cached.
 */
export function testClientCertificate(pkiName: string, commonName: string): TestClientCertificate {
  const key = `${pkiName}\0${commonName}`;
  let issued = clientCache.get(key);
  if (!issued) {
    const pki = testPki(pkiName);
    const ca: Ca = {
      cert: forge.pki.certificateFromPem(pki.caCertPem),
      keys: {
        privateKey: forge.pki.privateKeyFromPem(pki.caKeyPem) as forge.pki.rsa.PrivateKey,
        publicKey: forge.pki.certificateFromPem(pki.caCertPem).publicKey as forge.pki.rsa.PublicKey,
        pem: pki.caKeyPem,
      },
    };
    const keys = generateKeys();
    const cert = baseCertificate(keys.publicKey, commonName);
    cert.setIssuer(ca.cert.subject.attributes);
    cert.setExtensions([
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
      { name: "extKeyUsage", clientAuth: true },
    ]);
    cert.sign(ca.keys.privateKey, forge.md.sha256.create());
    issued = checkedPems(cert, keys);
    clientCache.set(key, issued);
  }
  return issued;
}
