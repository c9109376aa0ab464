/**
 * Zero-configuration TLS material for the gateway, kept in the data directory's `tls/` (0700): a
 * private CA (`ca.crt`, `ca.key`), the gateway's server certificate (`server.crt`, `server.key`),
 * an admin client certificate (`admin.crt`, `admin.key`, CN `solo-admin`) and the admin bearer
 * token (`admin.token`). Keys and the token are 0600, certificates 0644.
 *
 * Everything is made on first use and loaded afterwards. Only what cannot serve is replaced: the
 * server certificate when it is missing, expires within 30 days or lacks a requested name, and a
 * leaf whose key is missing, or that is not signed by the CA. The CA is never replaced.
 *
 * Crash safety: every file is written under a temporary name, fsynced, renamed into place and the
 * directory fsynced, a key before its certificate; so a certificate on disk always has its key,
 * and a crash leaves at worst a key without a certificate, which the next call completes. Calls on
 * one directory are serialised by a per-process queue and a lock file (`tls/.lock`) across
 * processes; a lock left by a dead process is taken over.
 *
 * @example
 * const creds = await ensureCredentials(dataDir, { hostnames: ["solo.example.net"] });
 * http2.createSecureServer({
 *   key: creds.serverKeyPem, cert: creds.serverCertPem, ca: creds.caPem, requestCert: true, rejectUnauthorized: true,
 * });
 * const { token } = await ensureAdminToken(dataDir, async () => (await kernel.tokens.grant({ tenant: null, permissions: ["*"] })).token);
 */
import { createPrivateKey, type KeyObject, randomBytes, X509Certificate } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import { hostname } from "node:os";
import { basename, dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Kernel } from "../kernel/index.ts";
import { SoloError } from "../lib/errors/errors.ts";
import { isAlive, syncDir, TEMP_NAME, tempName, tryLock } from "../lib/lock-file.ts";
import { type AltName, createCa, issueCert, parseAltName } from "../tls/certs.ts";
import { type CredentialPaths, credentialPaths } from "./credential-paths.ts";

export { type CredentialPaths, credentialPaths } from "./credential-paths.ts";

/** A credential {@link ensureCredentials} can make. */
export type CredentialName = "ca" | "server" | "admin";

/** The gateway's TLS material, as PEM strings ready for `node:tls`. */
export interface GatewayCredentials {
  /** The CA certificate: the server's `ca` (to verify clients), and what clients trust. */
  readonly caPem: string;
  readonly serverCertPem: string;
  readonly serverKeyPem: string;
  readonly adminCertPem: string;
  readonly adminKeyPem: string;
  readonly paths: CredentialPaths;
  /** SHA-256 of the CA certificate as colon-separated hex, as `openssl x509 -fingerprint -sha256` prints it. */
  readonly caFingerprint: string;
  /** What this call made or re-issued (empty when everything was loaded). */
  readonly issued: readonly CredentialName[];
}

/** Options of {@link ensureCredentials}. */
export interface EnsureOptions {
  /**
   * Extra DNS names (`*.` wildcards allowed) or IP addresses for the server certificate, beside
   * `localhost`, `127.0.0.1`, `::1` and the machine's host name. A re-issued certificate carries
   * these defaults and the names of the call that re-issued it, so pass the same list each time.
   */
  readonly hostnames?: readonly string[];
}

/** Options of {@link issueClientCert}. */
export interface ClientCertOptions {
  /** Who the certificate identifies (a tenant, a machine): 1-64 of `A-Z a-z 0-9 . _ -`. */
  readonly commonName: string;
  /** Days it stays valid: 1-36500, default 397; never beyond the CA's expiry. */
  readonly days?: number;
}

/** A client certificate, its key, and the CA certificate the client needs to trust the gateway. */
export interface ClientCredentials {
  readonly certPem: string;
  readonly keyPem: string;
  readonly caPem: string;
}

/** The admin bearer token and where it is kept. */
export interface AdminToken {
  readonly token: string;
  readonly path: string;
  /** Whether this call minted it. */
  readonly created: boolean;
}

const LOCK_FILE = ".lock";
const DAY_MS = 24 * 60 * 60 * 1000;
const RENEW_BEFORE_MS = 30 * DAY_MS;
const SERVER_DAYS = 397;
/** The admin certificate lives as long as the CA (it is capped there), so it never lapses alone. */
const ADMIN_DAYS = 3650;
const LOCK_WAIT_MS = 15_000;
const SERVER_CN = "solo-gateway";
const ADMIN_CN = "solo-admin";
const CLIENT_NAME = /^[A-Za-z0-9._-]{1,64}$/;
/** A stored token: one run of printable ASCII without spaces. */
const TOKEN_TEXT = /^[\x21-\x7e]{1,1024}$/;

/**
 * Loads the gateway's CA, server and admin certificates from `<dataDir>/tls`, making whatever is
 * missing and re-issuing a server certificate that expires within 30 days or lacks a requested
 * name. Rejects with `SOLO_ERR_KERNEL_DATA_DIR` (naming the file, with a hint) for a key readable
 * by others, a damaged PEM, or a CA that cannot serve.
 *
 * @example
 * const { serverKeyPem, serverCertPem, caPem } = await ensureCredentials("./.solo");
 */
export async function ensureCredentials(dataDir: string, opts: EnsureOptions = {}): Promise<GatewayCredentials> {
  const wanted = wantedNames(opts);
  const paths = credentialPaths(dataDir);
  return exclusive(paths, async () => {
    const issued: CredentialName[] = [];
    let ca = await loadCa(paths);
    if (!ca) {
      ca = await makeCa(paths);
      issued.push("ca");
    }
    let admin = await loadLeaf(paths.adminCert, paths.adminKey, ca);
    if (!admin) {
      admin = await issueLeaf(ca, paths.adminCert, paths.adminKey, { commonName: ADMIN_CN, usage: "client", days: ADMIN_DAYS });
      issued.push("admin");
    }
    let server = await loadLeaf(paths.serverCert, paths.serverKey, ca);
    if (!server || serverNeedsRenewal(server, ca, wanted)) {
      server = await issueLeaf(ca, paths.serverCert, paths.serverKey, {
        commonName: SERVER_CN,
        dnsNames: wanted.filter((n) => n.type === "dns").map((n) => n.value),
        ips: wanted.filter((n) => n.type === "ip").map((n) => n.value),
        usage: "server",
        days: SERVER_DAYS,
      });
      issued.push("server");
    }
    return {
      caPem: ca.certPem,
      serverCertPem: server.certPem,
      serverKeyPem: server.keyPem,
      adminCertPem: admin.certPem,
      adminKeyPem: admin.keyPem,
      paths,
      caFingerprint: ca.cert.fingerprint256,
      issued,
    };
  });
}

/**
 * Issues a client certificate signed by the data directory's CA (making the CA if there is none
 * yet), for `solo cert issue`. Nothing is written: the caller hands the result to the client.
 *
 * @example
 * const { certPem, keyPem, caPem } = await issueClientCert("./.solo", { commonName: "acme-laptop" });
 */
export async function issueClientCert(dataDir: string, opts: ClientCertOptions): Promise<ClientCredentials> {
  if (opts === null || typeof opts !== "object") throw invalid("options", "the options must be an object", 'pass { commonName: "acme" }');
  if (typeof opts.commonName !== "string" || !CLIENT_NAME.test(opts.commonName)) {
    throw invalid(
      "commonName",
      "commonName must be 1-64 of letters, digits, '.', '_' and '-'",
      'name the client, e.g. "acme" or "ci-runner-1"',
    );
  }
  const days: unknown = opts.days;
  if (days !== undefined && (typeof days !== "number" || !Number.isSafeInteger(days) || days < 1 || days > 36_500)) {
    throw invalid("days", "days must be an integer from 1 to 36500", "leave it out for the default of 397 days");
  }
  const paths = credentialPaths(dataDir);
  const ca = await exclusive(paths, async () => (await loadCa(paths)) ?? (await makeCa(paths)));
  const signer = requireCaKey(ca, "a client certificate");
  const leaf = await issueCert(signer, { commonName: opts.commonName, usage: "client", days: opts.days });
  return { ...leaf, caPem: ca.certPem };
}

/**
 * The admin bearer token in `<dataDir>/tls/admin.token` (0600): read if present, else obtained
 * from `mint` (which grants an unscoped `*` token through the kernel) and stored atomically.
 * Whether a stored token is still valid is for the caller to check (the kernel keeps only hashes).
 *
 * @example
 * const { token } = await ensureAdminToken(dataDir, async () => (await kernel.tokens.grant({ tenant: null, permissions: ["*"] })).token);
 */
export async function ensureAdminToken(dataDir: string, mint: () => Promise<string>): Promise<AdminToken> {
  if (typeof mint !== "function")
    throw invalid("mint", "mint must be a function that resolves to a token", "grant one with kernel.tokens.grant");
  const paths = credentialPaths(dataDir);
  const path = paths.adminToken;
  return exclusive(paths, async () => {
    const stored = await readChecked(path, "secret");
    if (stored !== undefined) {
      const token = stored.trim();
      if (!TOKEN_TEXT.test(token)) {
        throw corrupt(path, token === "" ? "is empty" : "does not hold one token", `delete ${path} to have a new admin token granted`);
      }
      return { token, path, created: false };
    }
    const token = await mint();
    if (typeof token !== "string" || !TOKEN_TEXT.test(token)) {
      throw invalid("mint", "mint() must resolve to a token string (printable, without spaces)", "return the token of kernel.tokens.grant");
    }
    await writeAtomic(path, `${token}\n`, 0o600);
    return { token, path, created: true };
  });
}

/**
 * The admin token in the data directory, made on first start; one the kernel no longer accepts
 * (revoked, or a store replaced under the directory) is replaced by a new one.
 */
export async function adminToken(kernel: Kernel): Promise<string> {
  const mint = async (): Promise<string> =>
    (await kernel.tokens.grant({ tenant: null, permissions: ["*"], label: "admin (solo start)" })).token;
  const stored = await ensureAdminToken(kernel.dataDir, mint);
  if (stored.created) return stored.token;
  const still = await kernel
    .as(stored.token)
    .whoami()
    .then(
      (t) => t.state === "active",
      () => false,
    );
  if (still) return stored.token;
  await rm(stored.path, { force: true });
  return (await ensureAdminToken(kernel.dataDir, mint)).token;
}

// ---- The CA and its leaves ----

interface Ca {
  readonly certPem: string;
  readonly keyPath: string;
  /** Absent when the operator keeps the CA key offline: loading works, issuing does not. */
  readonly keyPem: string | undefined;
  readonly cert: X509Certificate;
}

interface Leaf {
  readonly certPem: string;
  readonly keyPem: string;
  readonly cert: X509Certificate;
}

async function loadCa(paths: CredentialPaths): Promise<Ca | undefined> {
  const certPem = await readChecked(paths.caCert, "cert");
  const keyPem = await readChecked(paths.caKey, "secret");
  const key = keyPem === undefined ? undefined : parseKey(paths.caKey, keyPem);
  if (certPem === undefined) {
    const issued = await existing([paths.adminCert, paths.adminKey, paths.serverCert, paths.serverKey]);
    if (issued.length > 0) {
      throw new SoloError(
        "SOLO_ERR_KERNEL_DATA_DIR",
        `the CA certificate ${paths.caCert} is missing, but certificates it issued remain (${issued.join(", ")})`,
        { file: paths.caCert, hint: `restore ${paths.caCert} from a backup, or remove ${paths.dir} to start over with a new CA` },
      );
    }
    // Never made, or a crash came between writing the CA's key and its certificate: start over.
    return undefined;
  }
  const cert = parseCert(paths.caCert, certPem);
  const hint = `restore it from a backup, or remove ${paths.dir} to start over with a new CA (certificates the old one issued stop working)`;
  if (!cert.ca) throw corrupt(paths.caCert, "is not a CA certificate", hint);
  if (cert.validToDate.getTime() <= Date.now()) throw corrupt(paths.caCert, `expired on ${cert.validToDate.toISOString()}`, hint);
  if (key && !cert.checkPrivateKey(key)) throw corrupt(paths.caKey, `is not the key of ${paths.caCert}`, hint);
  return { certPem, keyPath: paths.caKey, keyPem, cert };
}

async function makeCa(paths: CredentialPaths): Promise<Ca> {
  // A random suffix tells this CA from another machine's in a trust store.
  const made = await createCa({ commonName: `Solo local CA ${randomBytes(4).toString("hex")}` });
  await writeAtomic(paths.caKey, made.keyPem, 0o600);
  await writeAtomic(paths.caCert, made.certPem, 0o644);
  return { ...made, keyPath: paths.caKey, cert: new X509Certificate(made.certPem) };
}

/** A leaf that can serve: both files, its key, signed by the CA. Undefined means "issue it". */
async function loadLeaf(certPath: string, keyPath: string, ca: Ca): Promise<Leaf | undefined> {
  const certPem = await readChecked(certPath, "cert");
  const keyPem = await readChecked(keyPath, "secret");
  // Parsed whenever present, so a damaged file is reported rather than silently replaced.
  const cert = certPem === undefined ? undefined : parseCert(certPath, certPem);
  const key = keyPem === undefined ? undefined : parseKey(keyPath, keyPem);
  // A key without its certificate, or a new key beside an old certificate, is what a crash while
  // issuing leaves behind.
  if (certPem === undefined || keyPem === undefined || !cert || !key || !cert.checkPrivateKey(key)) return undefined;
  if (!cert.checkIssued(ca.cert) || !cert.verify(ca.cert.publicKey)) return undefined;
  return { certPem, keyPem, cert };
}

async function issueLeaf(ca: Ca, certPath: string, keyPath: string, opts: Parameters<typeof issueCert>[1]): Promise<Leaf> {
  const signer = requireCaKey(ca, `the certificate ${certPath}`);
  const made = await issueCert(signer, opts);
  await writeAtomic(keyPath, made.keyPem, 0o600);
  await writeAtomic(certPath, made.certPem, 0o644);
  return { ...made, cert: new X509Certificate(made.certPem) };
}

function requireCaKey(ca: Ca, what: string): { certPem: string; keyPem: string } {
  if (ca.keyPem === undefined) {
    throw new SoloError("SOLO_ERR_KERNEL_DATA_DIR", `cannot issue ${what}: the CA key ${ca.keyPath} is missing`, {
      file: ca.keyPath,
      hint: `put the CA key back in ${ca.keyPath} (it may be kept offline between issues)`,
    });
  }
  return { certPem: ca.certPem, keyPem: ca.keyPem };
}

function serverNeedsRenewal(server: Leaf, ca: Ca, wanted: readonly AltName[]): boolean {
  const expires = server.cert.validToDate.getTime();
  // A certificate already ending with its CA would come out the same: renewing could not help.
  if (expires - Date.now() < RENEW_BEFORE_MS && expires < ca.cert.validToDate.getTime()) return true;
  return wanted.some(
    (n) => (n.type === "ip" ? server.cert.checkIP(n.value) : server.cert.checkHost(n.value, { subject: "never" })) === undefined,
  );
}

/** The server certificate's names: the defaults, the machine's host name and the caller's. */
function wantedNames(opts: EnsureOptions): AltName[] {
  if (opts === null || typeof opts !== "object")
    throw invalid("options", "the options must be an object", 'pass e.g. { hostnames: ["solo.example.net"] }');
  const extra: unknown = opts.hostnames ?? [];
  if (!Array.isArray(extra))
    throw invalid("hostnames", "hostnames must be an array of strings", 'pass e.g. ["solo.example.net", "10.0.0.5"]');
  const names: AltName[] = [
    { type: "dns", value: "localhost" },
    { type: "ip", value: "127.0.0.1" },
    { type: "ip", value: "::1" },
  ];
  // A host name that is not a valid DNS name is left out rather than stopping the gateway.
  const own = parseAltName(hostname());
  if (own) names.push(own);
  extra.forEach((value: unknown, i) => {
    const name = typeof value === "string" ? parseAltName(value) : undefined;
    if (!name)
      throw invalid(
        `hostnames[${i}]`,
        `hostnames[${i}] is neither a DNS name nor an IP address`,
        'use e.g. "solo.example.net", "*.example.net" or "10.0.0.5"',
      );
    names.push(name);
  });
  const seen = new Set<string>();
  return names.filter((n) => !seen.has(`${n.type}:${n.value}`) && seen.add(`${n.type}:${n.value}`));
}

// ---- Reading and parsing ----

/**
 * A file's text, or undefined if it does not exist. A secret (key, token) readable by others, or
 * a certificate others can change, is refused: either would let another user act as the gateway.
 */
async function readChecked(path: string, kind: "secret" | "cert"): Promise<string | undefined> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw dataDirError(`cannot read ${path}: ${(err as Error).message}`, path, err);
  }
  try {
    const st = await fh.stat(); // of the file opened, so it cannot be swapped after the check
    if (!st.isFile()) throw new SoloError("SOLO_ERR_KERNEL_DATA_DIR", `${path} is not a regular file`, { file: path });
    const mode = st.mode & 0o777;
    if (process.platform !== "win32" && kind === "secret" && (mode & 0o077) !== 0) {
      throw new SoloError("SOLO_ERR_KERNEL_DATA_DIR", `${path} can be read by others (mode ${mode.toString(8)}); it must be 0600`, {
        file: path,
        mode: mode.toString(8),
        hint: `chmod 600 ${path}`,
      });
    }
    if (process.platform !== "win32" && kind === "cert" && (mode & 0o022) !== 0) {
      throw new SoloError("SOLO_ERR_KERNEL_DATA_DIR", `${path} can be changed by others (mode ${mode.toString(8)}); it must be 0644`, {
        file: path,
        mode: mode.toString(8),
        hint: `chmod 644 ${path}`,
      });
    }
    return await fh.readFile("utf8");
  } catch (err) {
    throw err instanceof SoloError ? err : dataDirError(`cannot read ${path}: ${(err as Error).message}`, path, err);
  } finally {
    await fh.close();
  }
}

function parseCert(path: string, text: string): X509Certificate {
  const damage = pemDamage(text, "CERTIFICATE");
  if (damage) throw corrupt(path, damage, repairHint(path));
  try {
    return new X509Certificate(text);
  } catch (err) {
    throw corrupt(path, `is not a valid certificate (${(err as Error).message})`, repairHint(path), err);
  }
}

function parseKey(path: string, text: string): KeyObject {
  const damage = pemDamage(text, "PRIVATE KEY");
  if (damage) throw corrupt(path, damage, repairHint(path));
  try {
    return createPrivateKey(text);
  } catch (err) {
    throw corrupt(path, `is not a valid private key (${(err as Error).message})`, repairHint(path), err);
  }
}

/** What is wrong with a PEM's framing, in words, or undefined if it looks whole. */
function pemDamage(text: string, label: string): string | undefined {
  if (text.trim() === "") return "is empty";
  const begin = new RegExp(`-----BEGIN ((?:[A-Z]+ )*${label})-----`).exec(text);
  if (!begin) return `has no "-----BEGIN ${label}-----" line`;
  const end = `-----END ${begin[1]}-----`;
  const at = text.indexOf(end, begin.index);
  if (at === -1) return `is truncated: it has no "${end}" line`;
  const body = text.slice(begin.index + begin[0].length, at).replace(/\s+/g, "");
  if (body.length === 0 || body.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(body)) return "has a damaged body (not whole base64)";
  return undefined;
}

function repairHint(path: string): string {
  if (basename(path).startsWith("ca."))
    return `restore ${path} from a backup; removing the tls directory makes a new CA, and certificates the old one issued stop working`;
  const stem = path.slice(0, path.lastIndexOf("."));
  return `delete ${stem}.crt and ${stem}.key to have them issued again`;
}

async function existing(paths: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const path of paths) {
    try {
      await stat(path);
      found.push(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw dataDirError(`cannot read ${path}: ${(err as Error).message}`, path, err);
    }
  }
  return found;
}

// ---- Writing ----

/** Writes a whole file or nothing: a private temporary file, fsynced, renamed, the directory fsynced. */
async function writeAtomic(path: string, content: string, mode: 0o600 | 0o644): Promise<void> {
  const temp = tempName(path);
  try {
    const fh = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      await fh.writeFile(content);
      // Explicit, so the process umask neither widens nor narrows what was asked for.
      await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, path);
    await syncDir(dirname(path));
  } catch (err) {
    // The write's own error is the one worth reporting; a leftover temporary file is swept later.
    await rm(temp, { force: true }).catch(() => undefined);
    throw dataDirError(`cannot write ${path}: ${(err as Error).message}`, path, err);
  }
}

/** Makes `tls/` (0700) and refuses one that others can reach. */
async function prepareDir(dir: string): Promise<void> {
  try {
    await mkdir(dirname(dir), { recursive: true, mode: 0o700 });
    const made = await mkdir(dir, { mode: 0o700 }).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code === "EEXIST") return false;
        throw err;
      },
    );
    if (made) await syncDir(dirname(dir));
  } catch (err) {
    throw dataDirError(`cannot create ${dir}: ${(err as Error).message}`, dir, err);
  }
  const st = await stat(dir);
  if (!st.isDirectory())
    throw new SoloError("SOLO_ERR_KERNEL_DATA_DIR", `${dir} is not a directory`, { file: dir, hint: `move ${dir} aside` });
  const mode = st.mode & 0o777;
  if (process.platform !== "win32" && (mode & 0o077) !== 0) {
    throw new SoloError("SOLO_ERR_KERNEL_DATA_DIR", `${dir} can be reached by others (mode ${mode.toString(8)}); it must be 0700`, {
      file: dir,
      mode: mode.toString(8),
      hint: `chmod 700 ${dir}`,
    });
  }
}

/** Removes temporary files a crashed writer left (its process is gone). Called under the lock. */
async function sweepTemps(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const pid = Number(TEMP_NAME.exec(name)?.[1] ?? 0);
    if (pid > 0 && pid !== process.pid && !isAlive(pid)) await rm(join(dir, name), { force: true });
  }
}

// ---- Mutual exclusion ----

/** Per directory, the tail of this process's queue of calls. */
const queues = new Map<string, Promise<void>>();

/** Runs `fn` alone on the directory: after this process's earlier calls, and under the lock file. */
async function exclusive<T>(paths: CredentialPaths, fn: () => Promise<T>): Promise<T> {
  const previous = queues.get(paths.dir) ?? Promise.resolve();
  let release = (): void => undefined;
  const done = new Promise<void>((r) => {
    release = r;
  });
  const tail = previous.then(() => done);
  queues.set(paths.dir, tail);
  try {
    await previous;
    await prepareDir(paths.dir);
    return await withLockFile(paths.dir, async () => {
      await sweepTemps(paths.dir);
      return fn();
    });
  } finally {
    release();
    if (queues.get(paths.dir) === tail) queues.delete(paths.dir);
  }
}

async function withLockFile<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const path = join(dir, LOCK_FILE);
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
    const taken = await tryLock(path).catch((err: unknown) => {
      throw dataDirError(`cannot take the lock ${path}: ${(err as Error).message}`, path, err);
    });
    if ("lock" in taken) {
      try {
        return await fn();
      } finally {
        await taken.lock.release();
      }
    }
    if (Date.now() > deadline) {
      const pid = taken.holder;
      throw new SoloError(
        "SOLO_ERR_KERNEL_DATA_DIR_LOCKED",
        `${dir} has been locked by process ${pid ?? "?"} for ${LOCK_WAIT_MS / 1000} s`,
        {
          file: path,
          ...(pid !== undefined ? { pid } : {}),
          hint: pid !== undefined ? `if process ${pid} is not a Solo process, remove ${path}` : `retry; if it persists, remove ${path}`,
        },
      );
    }
    await sleep(delay);
  }
}

// ---- Errors ----

function dataDirError(message: string, file: string, cause: unknown): SoloError {
  return new SoloError("SOLO_ERR_KERNEL_DATA_DIR", message, { file }, { cause });
}

function corrupt(file: string, what: string, hint: string, cause?: unknown): SoloError {
  return new SoloError("SOLO_ERR_KERNEL_DATA_DIR", `${file} ${what}`, { file, hint }, cause === undefined ? undefined : { cause });
}

function invalid(field: string, message: string, hint: string): SoloError {
  return new SoloError("SOLO_ERR_KERNEL_OPTIONS_INVALID", `gateway credentials: ${message}`, { field, hint });
}
