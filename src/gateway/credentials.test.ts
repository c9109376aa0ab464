import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { once } from "node:events";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import tls from "node:tls";
import { rejection } from "../../test/support/helpers.ts";
import { createCa, issueCert, parseAltName } from "../tls/certs.ts";
import { credentialPaths, ensureAdminToken, ensureCredentials, type GatewayCredentials, issueClientCert } from "./credentials.ts";

const dirs: string[] = [];

async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "solo-creds-"));
  dirs.push(dir);
  return dir;
}

/** Every file of `tls/` with its mode, inode, mtime and content: what "unchanged" means. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    const st = await stat(join(dir, name));
    out[name] = `${(st.mode & 0o777).toString(8)} ${st.ino} ${st.mtimeMs} ${await readFile(join(dir, name), "utf8")}`;
  }
  return out;
}

function modeOf(path: string): Promise<string> {
  return stat(path).then((st) => (st.mode & 0o777).toString(8));
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await once(child, "exit");
  assert.ok(child.pid !== undefined);
  return child.pid;
}

/** One GET over mutual TLS: the status and body, or the client's error code. */
function get(port: number, options: https.RequestOptions): Promise<string> {
  return new Promise((resolve) => {
    const req = https.get({ host: "127.0.0.1", port, path: "/", agent: false, ...options }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve(`${res.statusCode} ${body}`));
    });
    req.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe("gateway credentials", () => {
  describe("ensureCredentials()", () => {
    it("creates a CA, a server and an admin certificate on first use: keys 0600 and certificates 0644 in a 0700 tls directory", async () => {
      const dataDir = join(await freshDir(), "data"); // not there yet: made too
      const creds = await ensureCredentials(dataDir);
      const p = creds.paths;
      assert.deepEqual(p, credentialPaths(dataDir));
      assert.deepEqual(creds.issued, ["ca", "admin", "server"]);
      assert.equal(await modeOf(p.dir), "700");
      for (const key of [p.caKey, p.serverKey, p.adminKey]) assert.equal(await modeOf(key), "600", key);
      for (const cert of [p.caCert, p.serverCert, p.adminCert]) assert.equal(await modeOf(cert), "644", cert);
      assert.deepEqual((await readdir(p.dir)).sort(), ["admin.crt", "admin.key", "ca.crt", "ca.key", "server.crt", "server.key"]);

      assert.equal(await readFile(p.caCert, "utf8"), creds.caPem);
      assert.equal(await readFile(p.serverKey, "utf8"), creds.serverKeyPem);
      const ca = new X509Certificate(creds.caPem);
      assert.equal(ca.ca, true);
      assert.equal(creds.caFingerprint, ca.fingerprint256);
      assert.ok(ca.checkPrivateKey(createPrivateKey(await readFile(p.caKey, "utf8"))));
      const admin = new X509Certificate(creds.adminCertPem);
      assert.equal(admin.subject, "CN=solo-admin");
      assert.ok(admin.checkIssued(ca) && admin.verify(ca.publicKey));
      assert.ok(admin.checkPrivateKey(createPrivateKey(creds.adminKeyPem)));
      const server = new X509Certificate(creds.serverCertPem);
      assert.ok(server.checkIssued(ca) && server.verify(ca.publicKey));
      assert.ok(server.checkPrivateKey(createPrivateKey(creds.serverKeyPem)));
    });

    it("loads the same material on later calls, leaving every file untouched", async () => {
      const dataDir = await freshDir();
      const first = await ensureCredentials(dataDir);
      const files = await snapshot(first.paths.dir);
      const second = await ensureCredentials(dataDir);
      assert.deepEqual(second.issued, []);
      assert.equal(second.caFingerprint, first.caFingerprint);
      assert.deepEqual({ ...second, issued: [] }, { ...first, issued: [] });
      assert.deepEqual(await snapshot(first.paths.dir), files);
    });

    it("names localhost, 127.0.0.1, ::1 and the machine's host name in the server certificate", async () => {
      const creds = await ensureCredentials(await freshDir());
      const server = new X509Certificate(creds.serverCertPem).toLegacyObject();
      for (const name of ["localhost", "127.0.0.1", "::1", ...(parseAltName(hostname()) ? [hostname()] : [])]) {
        assert.equal(tls.checkServerIdentity(name, server), undefined, name);
      }
      assert.ok(tls.checkServerIdentity("example.com", server) instanceof Error);
    });

    it("re-issues only the server certificate for a host name it lacks, and keeps it while no new name is asked for", async () => {
      const dataDir = await freshDir();
      const first = await ensureCredentials(dataDir);
      const p = first.paths;
      const before = await snapshot(p.dir);
      const wider = await ensureCredentials(dataDir, { hostnames: ["solo.test", "10.1.2.3"] });
      assert.deepEqual(wider.issued, ["server"]);
      const server = new X509Certificate(wider.serverCertPem);
      assert.equal(server.checkHost("solo.test", { subject: "never" }), "solo.test");
      assert.equal(server.checkIP("10.1.2.3"), "10.1.2.3");
      assert.equal(server.checkHost("localhost", { subject: "never" }), "localhost", "the defaults stay");
      assert.equal(wider.caFingerprint, first.caFingerprint);
      const afterwards = await snapshot(p.dir);
      for (const name of ["ca.crt", "ca.key", "admin.crt", "admin.key"]) assert.equal(afterwards[name], before[name], name);
      assert.notEqual(afterwards["server.crt"], before["server.crt"]);
      assert.notEqual(afterwards["server.key"], before["server.key"]);
      // Covered now: neither the same names nor the defaults alone re-issue it.
      assert.deepEqual((await ensureCredentials(dataDir, { hostnames: ["SOLO.test"] })).issued, []);
      assert.deepEqual((await ensureCredentials(dataDir)).issued, []);
      assert.deepEqual(await snapshot(p.dir), afterwards);
    });

    it("re-issues a server certificate that expires within 30 days, or whose key a crash replaced or lost", async () => {
      const dataDir = await freshDir();
      const { paths: p } = await ensureCredentials(dataDir);
      const ca = { certPem: await readFile(p.caCert, "utf8"), keyPem: await readFile(p.caKey, "utf8") };
      const short = await issueCert(ca, {
        commonName: "solo-gateway",
        dnsNames: ["localhost"],
        ips: ["127.0.0.1", "::1"],
        usage: "server",
        days: 10,
      });
      await writeFile(p.serverCert, short.certPem);
      await writeFile(p.serverKey, short.keyPem);
      const renewed = await ensureCredentials(dataDir);
      assert.deepEqual(renewed.issued, ["server"]);
      assert.ok(new X509Certificate(renewed.serverCertPem).validToDate.getTime() > Date.now() + 300 * 86_400_000);

      // A crash between writing a new key and its certificate leaves a key that is not the certificate's.
      await writeFile(p.serverKey, short.keyPem);
      assert.deepEqual((await ensureCredentials(dataDir)).issued, ["server"]);
      await rm(p.serverKey);
      const repaired = await ensureCredentials(dataDir);
      assert.deepEqual(repaired.issued, ["server"]);
      assert.ok(new X509Certificate(repaired.serverCertPem).checkPrivateKey(createPrivateKey(await readFile(p.serverKey, "utf8"))));
    });

    it("starts over after a crash that left only the CA's key and a temporary file, and refuses a lost CA certificate that issued others", async () => {
      const dataDir = await freshDir();
      const p = credentialPaths(dataDir);
      await mkdir(p.dir, { recursive: true, mode: 0o700 });
      await writeFile(p.caKey, (await createCa({ commonName: "half made" })).keyPem, { mode: 0o600 });
      const temp = `${p.serverKey}.${await deadPid()}.0123456789ab.tmp`;
      await writeFile(temp, "half a key", { mode: 0o600 });
      const creds = await ensureCredentials(dataDir);
      assert.deepEqual(creds.issued, ["ca", "admin", "server"]);
      assert.ok(new X509Certificate(creds.caPem).checkPrivateKey(createPrivateKey(await readFile(p.caKey, "utf8"))));
      await assert.rejects(stat(temp), { code: "ENOENT" }, "the dead writer's temporary file is swept");

      await rm(p.caCert);
      const err = await rejection(ensureCredentials(dataDir));
      assert.equal(err.reason, "SOLO_ERR_KERNEL_DATA_DIR");
      assert.equal(err.details.file, p.caCert);
      assert.match(err.message, /ca\.crt is missing, but certificates it issued remain/);
      assert.ok(await stat(p.adminCert), "nothing was replaced");
    });

    it("loads without the CA key (kept offline), and says which file is missing when it must issue", async () => {
      const dataDir = await freshDir();
      const first = await ensureCredentials(dataDir);
      await rm(first.paths.caKey);
      const loaded = await ensureCredentials(dataDir);
      assert.deepEqual(loaded.issued, []);
      assert.equal(loaded.serverCertPem, first.serverCertPem);
      const err = await rejection(ensureCredentials(dataDir, { hostnames: ["new.test"] }));
      assert.equal(err.reason, "SOLO_ERR_KERNEL_DATA_DIR");
      assert.equal(err.details.file, first.paths.caKey);
      assert.match(err.message, /cannot issue the certificate .*server\.crt: the CA key .*ca\.key is missing/);
      assert.equal((await rejection(issueClientCert(dataDir, { commonName: "acme" }))).details.file, first.paths.caKey);
    });

    it("refuses a key file others can read, a certificate others can write and a tls directory others can reach, with a chmod hint", async () => {
      const dataDir = await freshDir();
      const { paths: p } = await ensureCredentials(dataDir);
      const cases: Array<[string, number, string]> = [
        [p.serverKey, 0o644, `chmod 600 ${p.serverKey}`],
        [p.caKey, 0o640, `chmod 600 ${p.caKey}`],
        [p.caCert, 0o666, `chmod 644 ${p.caCert}`],
        [p.dir, 0o755, `chmod 700 ${p.dir}`],
      ];
      for (const [path, mode, hint] of cases) {
        const was = (await stat(path)).mode & 0o777;
        await chmod(path, mode);
        const err = await rejection(ensureCredentials(dataDir));
        assert.equal(err.reason, "SOLO_ERR_KERNEL_DATA_DIR", path);
        assert.equal(err.code, "failed_precondition");
        assert.equal(err.details.hint, hint);
        assert.ok(err.message.startsWith(path), err.message);
        await chmod(path, was);
      }
      assert.deepEqual((await ensureCredentials(dataDir)).issued, [], "nothing was replaced meanwhile");
    });

    it("names the file and the damage when a PEM is truncated or garbled", async () => {
      const dataDir = await freshDir();
      const { paths: p } = await ensureCredentials(dataDir);
      const key = await readFile(p.serverKey, "utf8");
      await truncate(p.serverKey, Math.floor(key.length / 2));
      let err = await rejection(ensureCredentials(dataDir));
      assert.equal(err.reason, "SOLO_ERR_KERNEL_DATA_DIR");
      assert.equal(err.message, `${p.serverKey} is truncated: it has no "-----END PRIVATE KEY-----" line`);
      assert.equal(err.details.file, p.serverKey);
      assert.match(String(err.details.hint), /delete .*server\.crt and .*server\.key/);
      await writeFile(p.serverKey, key);

      const cert = await readFile(p.caCert, "utf8");
      await writeFile(p.caCert, cert.replace(/\n[A-Za-z0-9+/]{20}/, "\n@@@@"));
      err = await rejection(ensureCredentials(dataDir));
      assert.equal(err.message, `${p.caCert} has a damaged body (not whole base64)`);
      assert.match(String(err.details.hint), /restore .*ca\.crt from a backup/);
      await writeFile(p.caCert, "");
      assert.equal((await rejection(ensureCredentials(dataDir))).message, `${p.caCert} is empty`);
      await writeFile(p.caCert, cert);
      assert.deepEqual((await ensureCredentials(dataDir)).issued, []);
    });

    it("refuses host names that are neither DNS names nor IP addresses, before touching the disk", async () => {
      const dataDir = await freshDir();
      for (const hostnames of [["bad host"], ["ok.test", "a/b"], "localhost"]) {
        // biome-ignore lint/suspicious/noExplicitAny: a caller that ignores the types
        const err = await rejection(ensureCredentials(dataDir, { hostnames: hostnames as any }));
        assert.equal(err.reason, "SOLO_ERR_KERNEL_OPTIONS_INVALID");
        assert.match(String(err.details.field), /^hostnames/);
      }
      assert.deepEqual(await readdir(dataDir), []);
    });

    it("makes one CA when called concurrently, from this process and from others", async () => {
      const dataDir = await freshDir();
      // Each child loads the module, says so, and waits for the word to go: all start together.
      const url = new URL("./credentials.ts", import.meta.url).href;
      const script = [
        `const m = await import(${JSON.stringify(url)});`,
        `process.stdout.write("ready\\n");`,
        `process.stdin.once("data", async () => { const c = await m.ensureCredentials(process.argv[1]); process.stdout.write(c.caFingerprint); process.exit(0); });`,
      ].join("\n");
      const children = [1, 2, 3, 4].map(() => {
        const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", "--input-type=module", "-e", script, dataDir], {
          stdio: ["pipe", "pipe", "inherit"],
        });
        let out = "";
        child.stdout.setEncoding("utf8");
        const ready = new Promise<void>((resolve) =>
          child.stdout.on("data", (chunk: string) => {
            out += chunk;
            if (out.startsWith("ready\n")) resolve();
          }),
        );
        const exited = once(child, "exit").then(([code]) => {
          assert.equal(code, 0);
          return out.slice("ready\n".length);
        });
        return { child, ready, exited };
      });
      await Promise.all(children.map((c) => c.ready));
      for (const { child } of children) child.stdin.end("go");
      const here = [1, 2, 3].map(() => ensureCredentials(dataDir).then((c) => c.caFingerprint));
      const fingerprints = await Promise.all([...children.map((c) => c.exited), ...here]);
      assert.equal(new Set(fingerprints).size, 1, fingerprints.join("\n"));

      const p = credentialPaths(dataDir);
      assert.deepEqual((await readdir(p.dir)).sort(), ["admin.crt", "admin.key", "ca.crt", "ca.key", "server.crt", "server.key"]);
      const creds = await ensureCredentials(dataDir);
      assert.deepEqual(creds.issued, [], "a consistent set: each key is its certificate's, each leaf the CA's");
      assert.equal(creds.caFingerprint, fingerprints[0]);
    });

    it("takes over a lock left by a process that died", async () => {
      const dataDir = await freshDir();
      const p = credentialPaths(dataDir);
      await mkdir(p.dir, { recursive: true, mode: 0o700 });
      await writeFile(join(p.dir, ".lock"), `${await deadPid()}\n0123456789abcdef\n`, { mode: 0o600 });
      assert.deepEqual((await ensureCredentials(dataDir)).issued, ["ca", "admin", "server"]);
      assert.ok(!(await readdir(p.dir)).includes(".lock"), "released");
    });
  });

  describe("over mutual TLS", () => {
    let creds: GatewayCredentials;
    let server: https.Server;
    let port: number;
    /** The common names of the clients the server's handler saw. */
    const served: string[] = [];

    before(async () => {
      creds = await ensureCredentials(await freshDir());
      server = https.createServer(
        { key: creds.serverKeyPem, cert: creds.serverCertPem, ca: creds.caPem, requestCert: true, rejectUnauthorized: true },
        (req, res) => {
          const cn = String((req.socket as tls.TLSSocket).getPeerCertificate().subject.CN);
          served.push(cn);
          res.end(cn);
        },
      );
      server.on("tlsClientError", () => {}); // the refused handshakes are the point of these tests
      server.listen(0, "127.0.0.1");
      await once(server, "listening");
      port = (server.address() as AddressInfo).port;
    });

    after(async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    });

    it("accepts the admin certificate, by the name localhost and by the address 127.0.0.1", async () => {
      const admin = { ca: creds.caPem, key: creds.adminKeyPem, cert: creds.adminCertPem };
      assert.equal(await get(port, { ...admin, servername: "localhost" }), "200 solo-admin");
      assert.equal(await get(port, admin), "200 solo-admin");
      assert.equal(await get(port, { ...admin, servername: "elsewhere.test" }), "ERR_TLS_CERT_ALTNAME_INVALID");
    });

    it("refuses a client without a certificate and one with a certificate from a foreign CA", async () => {
      assert.equal(await get(port, { ca: creds.caPem, servername: "localhost" }), "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED");
      const foreign = await issueCert(await createCa({ commonName: "Solo local CA" }), { commonName: "mallory", usage: "client" });
      const refused = await get(port, { ca: creds.caPem, key: foreign.keyPem, cert: foreign.certPem, servername: "localhost" });
      // The server drops the connection after the handshake (TLS 1.3): the client sees a reset or an alert.
      assert.match(refused, /^(ERR_SSL_|ECONNRESET)/);
      assert.ok(!served.includes("mallory"), "never reached the handler");
    });

    it("accepts a certificate from issueClientCert(), carrying the common name asked for", async () => {
      const client = await issueClientCert(join(creds.paths.dir, ".."), { commonName: "acme.laptop-1", days: 30 });
      assert.equal(client.caPem, creds.caPem);
      assert.equal(await get(port, { ca: client.caPem, key: client.keyPem, cert: client.certPem }), "200 acme.laptop-1");
      const cert = new X509Certificate(client.certPem);
      assert.ok(cert.validToDate.getTime() < Date.now() + 31 * 86_400_000);
    });
  });

  describe("issueClientCert()", () => {
    it("refuses a common name outside 1-64 of letters, digits, '.', '_' and '-', and days outside 1-36500", async () => {
      const dataDir = await freshDir();
      for (const commonName of ["", "a b", "x".repeat(65), "ünï", "a/b", 7]) {
        // biome-ignore lint/suspicious/noExplicitAny: a caller that ignores the types
        const err = await rejection(issueClientCert(dataDir, { commonName: commonName as any }));
        assert.equal(err.reason, "SOLO_ERR_KERNEL_OPTIONS_INVALID");
        assert.equal(err.details.field, "commonName");
      }
      for (const days of [0, 1.5, 36_501, "30"]) {
        // biome-ignore lint/suspicious/noExplicitAny: a caller that ignores the types
        const err = await rejection(issueClientCert(dataDir, { commonName: "acme", days: days as any }));
        assert.equal(err.reason, "SOLO_ERR_KERNEL_OPTIONS_INVALID");
        assert.equal(err.details.field, "days");
      }
      assert.deepEqual(await readdir(dataDir), []);
      const ok = await issueClientCert(dataDir, { commonName: "x".repeat(64) });
      assert.equal(new X509Certificate(ok.certPem).subject, `CN=${"x".repeat(64)}`);
    });
  });

  describe("ensureAdminToken()", () => {
    let mints = 0;
    const mint = async () => `solo_${String(++mints).padStart(43, "A")}`;

    afterEach(() => {
      mints = 0;
    });

    it("mints once, even when asked concurrently, stores the token 0600 and returns it afterwards", async () => {
      const dataDir = await freshDir();
      const results = await Promise.all([1, 2, 3].map(() => ensureAdminToken(dataDir, mint)));
      assert.equal(mints, 1);
      assert.deepEqual(
        results.map((r) => r.created),
        [true, false, false],
      );
      const { token, path } = results[0] ?? assert.fail();
      assert.ok(results.every((r) => r.token === token && r.path === path));
      assert.equal(path, credentialPaths(dataDir).adminToken);
      assert.equal(await readFile(path, "utf8"), `${token}\n`);
      assert.equal(await modeOf(path), "600");
      assert.deepEqual(await ensureAdminToken(dataDir, mint), { token, path, created: false });
      assert.equal(mints, 1);
    });

    it("refuses a token file others can read, and stores nothing when minting fails", async () => {
      const { path } = await ensureAdminToken(await freshDir(), mint);
      mints = 0;
      await chmod(path, 0o644);
      const err = await rejection(ensureAdminToken(join(path, "..", ".."), mint));
      assert.equal(err.reason, "SOLO_ERR_KERNEL_DATA_DIR");
      assert.equal(err.details.hint, `chmod 600 ${path}`);
      assert.equal(mints, 0);

      const other = await freshDir();
      await assert.rejects(
        ensureAdminToken(other, async () => {
          throw new Error("kernel closed");
        }),
        /kernel closed/,
      );
      assert.deepEqual(await readdir(credentialPaths(other).dir), []);
    });
  });
});
