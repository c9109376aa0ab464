/**
 * Certificates for Solo's TLS endpoints: a private CA and the server and client certificates it
 * issues (the kernel's mTLS gateway, tests that need a real TLS peer).
 *
 * Keys are ECDSA P-256, written as PKCS#8 PEM; certificates are PEM. Both load directly into
 * `node:tls` (`key`, `cert`, `ca`).
 *
 * @example
 * const ca = await createCa({ commonName: "Solo local CA" });
 * const server = await issueCert(ca, { commonName: "gateway", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
 * https.createServer({ key: server.keyPem, cert: server.certPem }, handler);
 */
// @peculiar/x509 resolves its algorithm providers through tsyringe, which needs the Reflect
// metadata API; the polyfill must be evaluated before the library is.
import "reflect-metadata";
import { createPrivateKey, createPublicKey, randomBytes } from "node:crypto";
import { isIP } from "node:net";
import { domainToASCII } from "node:url";
import * as x509 from "@peculiar/x509";
import { SoloError } from "../lib/errors/errors.ts";

/** A certificate and its private key, both PEM (the key as PKCS#8 `PRIVATE KEY`). */
export interface CertAndKey {
  readonly certPem: string;
  readonly keyPem: string;
}

/** What {@link createCa} makes. */
export interface CaOptions {
  /** The CA's subject common name, 1-64 characters. */
  readonly commonName: string;
  /** Days the CA stays valid; 1-36500, default 3650. */
  readonly days?: number;
}

/** What {@link issueCert} makes. */
export interface IssueOptions {
  /** The subject common name, 1-64 characters (for a client certificate: who it identifies). */
  readonly commonName: string;
  /** DNS subject alternative names; a leading `*.` label is a wildcard. IDNs are stored as punycode. */
  readonly dnsNames?: readonly string[];
  /** IP subject alternative names, IPv4 or IPv6. */
  readonly ips?: readonly string[];
  /** `server` (extended key usage serverAuth) or `client` (clientAuth). */
  readonly usage: "server" | "client";
  /** Days the certificate stays valid; 1-36500, default 397. Never beyond the CA's own expiry. */
  readonly days?: number;
}

/** Node's WebCrypto (the DOM-typed global), passed explicitly so no library-wide provider is assumed. */
const webcrypto: Crypto = globalThis.crypto;
const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY_MS = 24 * 60 * 60 * 1000;
/** notBefore is set this far in the past so a peer whose clock runs a little behind still accepts. */
const BACKDATE_MS = 5 * 60 * 1000;
const MAX_DAYS = 36_500;
const MAX_SANS = 100;
const MAX_COMMON_NAME = 64; // ub-common-name, RFC 5280

/** Creates a self-signed ECDSA P-256 certificate authority (basicConstraints CA, keyCertSign). */
export async function createCa(opts: CaOptions): Promise<CertAndKey> {
  const options = checkObject(opts, "ca");
  const commonName = checkCommonName(options.commonName, "ca.commonName");
  const days = checkDays(options.days, 3650, "ca.days");
  const keys = await generateKeys();
  const notBefore = new Date(Date.now() - BACKDATE_MS);
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name: [{ CN: [commonName] }],
      notBefore,
      notAfter: new Date(notBefore.getTime() + BACKDATE_MS + days * DAY_MS),
      keys,
      signingAlgorithm: ALGORITHM,
      extensions: [
        // pathLength 0: this CA signs leaves only, never another CA.
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );
  return { certPem: cert.toString("pem"), keyPem: await exportKey(keys.privateKey) };
}

/** Issues a server or client certificate signed by `ca`, with the given subject alternative names. */
export async function issueCert(ca: CertAndKey, opts: IssueOptions): Promise<CertAndKey> {
  const options = checkObject(opts, "cert");
  const commonName = checkCommonName(options.commonName, "cert.commonName");
  const days = checkDays(options.days, 397, "cert.days");
  if (options.usage !== "server" && options.usage !== "client") {
    throw invalid(
      "cert.usage",
      `cert.usage must be "server" or "client", got ${JSON.stringify(options.usage)}`,
      "pick the TLS role of the certificate",
    );
  }
  const names = [
    ...checkList(options.dnsNames, "cert.dnsNames").map((n, i) => ({
      type: "dns" as const,
      value: checkDnsName(n, `cert.dnsNames[${i}]`),
    })),
    ...checkList(options.ips, "cert.ips").map((n, i) => ({ type: "ip" as const, value: checkIp(n, `cert.ips[${i}]`) })),
  ];
  if (names.length > MAX_SANS)
    throw invalid(
      "cert.dnsNames",
      `a certificate may carry at most ${MAX_SANS} names, got ${names.length}`,
      "split the names over several certificates",
    );
  if (options.usage === "server" && names.length === 0) {
    throw invalid(
      "cert.dnsNames",
      "a server certificate needs at least one DNS name or IP address",
      "TLS clients check the server's name against these, not the common name",
    );
  }
  const issuer = await loadCa(ca);
  const keys = await generateKeys();
  const notBefore = new Date(Date.now() - BACKDATE_MS);
  const wanted = notBefore.getTime() + BACKDATE_MS + days * DAY_MS;
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(
      [options.usage === "server" ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
      false,
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
    issuer.keyId === undefined
      ? await x509.AuthorityKeyIdentifierExtension.create(issuer.cert.publicKey, false, webcrypto)
      : new x509.AuthorityKeyIdentifierExtension(issuer.keyId, false),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: [{ CN: [commonName] }],
      issuer: issuer.cert.subjectName,
      notBefore,
      // A certificate outliving its CA would fail verification at the CA's expiry anyway.
      notAfter: new Date(Math.min(wanted, issuer.cert.notAfter.getTime())),
      publicKey: keys.publicKey,
      signingKey: issuer.key,
      signingAlgorithm: ALGORITHM,
      extensions,
    },
    webcrypto,
  );
  return { certPem: cert.toString("pem"), keyPem: await exportKey(keys.privateKey) };
}

/** A subject alternative name as {@link issueCert} stores it: a DNS name (lowercase punycode) or an IP address. */
export interface AltName {
  readonly type: "dns" | "ip";
  readonly value: string;
}

/**
 * Classifies a host name or address the way {@link issueCert} would store it (`dnsNames` or
 * `ips`), or undefined if it is neither a valid DNS name nor an IP address.
 */
export function parseAltName(value: string): AltName | undefined {
  if (isIP(value) !== 0) return { type: "ip", value: checkIp(value, "host") };
  try {
    return { type: "dns", value: checkDnsName(value, "host") };
  } catch (err) {
    if (err instanceof SoloError) return undefined; // not a DNS name: the answer, not a failure
    throw err;
  }
}

/** A positive 128-bit serial with its top bit cleared (DER INTEGERs are signed) and never zero. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString("hex");
}

function generateKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
}

async function exportKey(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY");
}

/** Parses the CA, checks it is a CA and that the key is its key, and imports the key for signing. */
async function loadCa(ca: CertAndKey): Promise<{ cert: x509.X509Certificate; key: CryptoKey; keyId: string | undefined }> {
  const given = checkObject(ca, "ca");
  if (typeof given.certPem !== "string" || typeof given.keyPem !== "string") {
    throw invalid("ca", "the CA must be { certPem, keyPem } strings", "pass the value createCa() returned");
  }
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(given.certPem);
  } catch (err) {
    throw invalid("ca.certPem", "the CA certificate is not a PEM certificate", "pass the certPem createCa() returned", err);
  }
  const constraints = cert.getExtension(x509.BasicConstraintsExtension);
  if (constraints?.ca !== true)
    throw invalid(
      "ca.certPem",
      "the CA certificate is not a CA (basicConstraints CA is not set)",
      "issue from a certificate made by createCa()",
    );
  let spki: Buffer;
  try {
    spki = createPublicKey(createPrivateKey(given.keyPem)).export({ type: "spki", format: "der" });
  } catch (err) {
    throw invalid("ca.keyPem", "the CA key is not a PEM private key", "pass the keyPem createCa() returned", err);
  }
  if (!spki.equals(Buffer.from(cert.publicKey.rawData))) {
    throw invalid(
      "ca.keyPem",
      "the CA key does not belong to the CA certificate",
      "pass the certPem and keyPem of the same createCa() result",
    );
  }
  let key: CryptoKey;
  try {
    const der = x509.PemConverter.decodeFirst(given.keyPem);
    key = await webcrypto.subtle.importKey("pkcs8", der, { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
  } catch (err) {
    throw invalid("ca.keyPem", "the CA key is not an ECDSA P-256 PKCS#8 key", "use a CA made by createCa()", err);
  }
  return { cert, key, keyId: cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId };
}

function checkObject<T>(value: T, field: string): T {
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw invalid(field, `${field} must be an object`, "see the options documented on the function");
  return value;
}

function checkCommonName(value: unknown, field: string): string {
  // Control characters in a subject would be shown verbatim by tools that print certificates.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to refuse them
  if (typeof value !== "string" || value.length === 0 || value.length > MAX_COMMON_NAME || /[\u0000-\u001f\u007f]/.test(value)) {
    throw invalid(field, `${field} must be 1-${MAX_COMMON_NAME} printable characters`, "use a short descriptive name");
  }
  return value;
}

function checkDays(value: unknown, fallback: number, field: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1 || value > MAX_DAYS) {
    throw invalid(field, `${field} must be an integer from 1 to ${MAX_DAYS}`, `leave it out for the default of ${fallback} days`);
  }
  return value;
}

function checkList(value: unknown, field: string): readonly unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid(field, `${field} must be an array of strings`, 'pass e.g. ["localhost"]');
  return value;
}

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

function checkDnsName(value: unknown, field: string): string {
  const raw = typeof value === "string" && value.length <= 253 ? value : "";
  const wildcard = raw.startsWith("*.");
  const ascii = /^[^\s/\\?#@%:[\]*]+$/.test(wildcard ? raw.slice(2) : raw) ? domainToASCII(wildcard ? raw.slice(2) : raw) : "";
  const labels = ascii.split(".");
  if (ascii === "" || isIP(ascii) !== 0 || ascii.length > 253 || !labels.every((l) => LABEL.test(l)) || (wildcard && labels.length < 2)) {
    throw invalid(field, `${field} is not a DNS name`, 'use a name like "api.example.com" or "*.example.com"; put IP addresses in ips');
  }
  return wildcard ? `*.${ascii}` : ascii;
}

function checkIp(value: unknown, field: string): string {
  if (typeof value !== "string" || isIP(value) === 0)
    throw invalid(field, `${field} is not an IP address`, 'use e.g. "127.0.0.1" or "::1"');
  // The library encodes IPv6 from plain hex groups only; the URL parser gives that form.
  return isIP(value) === 6 ? new URL(`http://[${value}]/`).hostname.slice(1, -1) : value;
}

function invalid(field: string, message: string, hint: string, cause?: unknown): SoloError {
  return new SoloError("SOLO_ERR_KERNEL_OPTIONS_INVALID", `certificate: ${message}`, { field, hint }, { cause });
}
