import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { once } from "node:events";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import tls from "node:tls";
import { SoloError } from "../lib/errors/errors.ts";
import { type CertAndKey, createCa, issueCert } from "./certs.ts";

/**
 * Connects as a TLS client and returns what the server sent, or the error code the connection
 * failed with. Under TLS 1.3 the server checks the client certificate after the client's
 * handshake completes, so only the server's reply (or its alert) tells acceptance from refusal.
 */
function exchange(options: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve) => {
    let received = "";
    const socket = tls.connect(options);
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      received += chunk;
    });
    socket.on("end", () => resolve(received === "" ? "closed without a reply" : received));
    socket.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/** Serves one GET over HTTPS and resolves with the status, or the client error code. */
function get(port: number, options: https.RequestOptions): Promise<number | string> {
  return new Promise((resolve) => {
    const req = https.get({ host: "127.0.0.1", port, path: "/", agent: false, ...options }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe("certs", () => {
  let ca: CertAndKey;
  let server: https.Server;
  let port: number;

  before(async () => {
    ca = await createCa({ commonName: "Solo test CA" });
    const leaf = await issueCert(ca, {
      commonName: "solo test server",
      dnsNames: ["localhost", "api.test"],
      ips: ["127.0.0.1", "::1"],
      usage: "server",
    });
    server = https.createServer({ key: leaf.keyPem, cert: leaf.certPem }, (_req, res) => res.end("hello"));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, "close");
  });

  describe("createCa()", () => {
    it("makes a self-signed P-256 CA that node:crypto reads as a CA", async () => {
      const cert = new X509Certificate(ca.certPem);
      assert.equal(cert.ca, true);
      assert.equal(cert.subject, "CN=Solo test CA");
      assert.equal(cert.issuer, cert.subject);
      assert.ok(cert.verify(cert.publicKey), "self-signed");
      assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
      assert.match(ca.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
      assert.equal(cert.checkPrivateKey((await import("node:crypto")).createPrivateKey(ca.keyPem)), true);
    });

    it("backdates notBefore, honours days, and draws a fresh positive serial each time", async () => {
      const before = Date.now();
      const other = await createCa({ commonName: "other", days: 2 });
      const cert = new X509Certificate(other.certPem);
      assert.ok(Date.parse(cert.validFrom) < before - 60_000, `validFrom ${cert.validFrom} is in the past`);
      const lifetime = Date.parse(cert.validTo) - Date.parse(cert.validFrom);
      assert.ok(lifetime >= 2 * 86_400_000 && lifetime <= 2 * 86_400_000 + 3_600_000, `lifetime ${lifetime}`);
      const serials = new Set([ca, other].map((c) => new X509Certificate(c.certPem).serialNumber));
      assert.equal(serials.size, 2);
      for (const s of serials) assert.match(s, /^[0-7][0-9A-F]{31}$/, "16 bytes, top bit clear");
    });

    it("refuses malformed options with the field at fault", async () => {
      for (const [opts, field] of [
        [{ commonName: "" }, "ca.commonName"],
        [{ commonName: "x".repeat(65) }, "ca.commonName"],
        [{ commonName: "a\nb" }, "ca.commonName"],
        [{ commonName: "ok", days: 0 }, "ca.days"],
        [{ commonName: "ok", days: 1.5 }, "ca.days"],
        [null, "ca"],
      ] as const) {
        await assert.rejects(
          createCa(opts as never),
          (e: unknown) => e instanceof SoloError && e.reason === "SOLO_ERR_KERNEL_OPTIONS_INVALID" && e.details.field === field,
        );
      }
    });
  });

  describe("issueCert()", () => {
    it("issues a server certificate a client trusting the CA accepts, by name and by IP", async () => {
      assert.equal(await get(port, { ca: ca.certPem, servername: "api.test" }), 200);
      assert.equal(await get(port, { ca: ca.certPem }), 200, "IP SAN 127.0.0.1");
      const leaf = new X509Certificate(
        await issueCert(ca, { commonName: "x", dnsNames: ["bücher.test"], usage: "server" }).then((c) => c.certPem),
      );
      assert.equal(leaf.subjectAltName, "DNS:xn--bcher-kva.test");
      assert.equal(leaf.ca, false);
      assert.ok(leaf.verify(new X509Certificate(ca.certPem).publicKey), "signed by the CA");
      assert.ok(leaf.checkIssued(new X509Certificate(ca.certPem)));
    });

    it("is refused by a client that does not trust the CA, and for a name it does not carry", async () => {
      assert.equal(await get(port, { servername: "api.test" }), "UNABLE_TO_VERIFY_LEAF_SIGNATURE");
      const stranger = await createCa({ commonName: "Another CA" });
      assert.equal(await get(port, { ca: stranger.certPem, servername: "api.test" }), "UNABLE_TO_VERIFY_LEAF_SIGNATURE");
      assert.equal(await get(port, { ca: ca.certPem, servername: "other.test" }), "ERR_TLS_CERT_ALTNAME_INVALID");
    });

    it("issues client certificates a server with requestCert verifies against the CA", async () => {
      const client = await issueCert(ca, { commonName: "tenant-acme", usage: "client" });
      const stranger = await issueCert(await createCa({ commonName: "Stranger CA" }), { commonName: "mallory", usage: "client" });
      const serverCert = await issueCert(ca, { commonName: "mtls", ips: ["127.0.0.1"], usage: "server" });
      const peers: string[] = [];
      const mtls = tls.createServer(
        { key: serverCert.keyPem, cert: serverCert.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true },
        (socket) => {
          const cn = String(socket.getPeerCertificate().subject.CN);
          peers.push(cn);
          socket.end(`hello ${cn}`);
        },
      );
      mtls.on("tlsClientError", () => {}); // the refused handshakes below are the point of the test
      mtls.listen(0, "127.0.0.1");
      await once(mtls, "listening");
      try {
        const mtlsPort = (mtls.address() as AddressInfo).port;
        const base = { host: "127.0.0.1", port: mtlsPort, ca: ca.certPem };
        assert.equal(await exchange({ ...base, key: client.keyPem, cert: client.certPem }), "hello tenant-acme");
        // Refused: the server sends an alert or just closes; it never greets.
        assert.doesNotMatch(await exchange({ ...base, key: stranger.keyPem, cert: stranger.certPem }), /^hello/);
        assert.equal(await exchange(base), "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED", "no client certificate");
        // A server certificate is not a client certificate (extended key usage).
        assert.doesNotMatch(await exchange({ ...base, key: serverCert.keyPem, cert: serverCert.certPem }), /^hello/);
        assert.deepEqual(peers, ["tenant-acme"]);
      } finally {
        mtls.close();
      }
    });

    it("carries the extended key usage, and never outlives its CA", async () => {
      const shortCa = await createCa({ commonName: "short", days: 1 });
      const server = new X509Certificate(
        (await issueCert(shortCa, { commonName: "s", dnsNames: ["a.test"], usage: "server", days: 30 })).certPem,
      );
      const client = new X509Certificate((await issueCert(shortCa, { commonName: "c", usage: "client" })).certPem);
      assert.deepEqual(server.keyUsage, ["1.3.6.1.5.5.7.3.1"]);
      assert.deepEqual(client.keyUsage, ["1.3.6.1.5.5.7.3.2"]);
      assert.ok(Date.parse(server.validTo) <= Date.parse(new X509Certificate(shortCa.certPem).validTo));
    });

    it("refuses bad names, a server certificate without names, and a key that is not the CA's", async () => {
      const other = await createCa({ commonName: "other" });
      for (const [c, opts, field] of [
        [ca, { commonName: "s", usage: "server" }, "cert.dnsNames"],
        [ca, { commonName: "s", dnsNames: ["bad name"], usage: "server" }, "cert.dnsNames[0]"],
        [ca, { commonName: "s", dnsNames: ["ok.test", "*"], usage: "server" }, "cert.dnsNames[1]"],
        [ca, { commonName: "s", dnsNames: ["127.0.0.1"], usage: "server" }, "cert.dnsNames[0]"],
        [ca, { commonName: "s", ips: ["300.1.1.1"], usage: "server" }, "cert.ips[0]"],
        [ca, { commonName: "s", ips: ["::1"], usage: "both" }, "cert.usage"],
        [{ certPem: ca.certPem, keyPem: other.keyPem }, { commonName: "s", ips: ["::1"], usage: "server" }, "ca.keyPem"],
        [{ certPem: "nope", keyPem: ca.keyPem }, { commonName: "s", ips: ["::1"], usage: "server" }, "ca.certPem"],
      ] as const) {
        await assert.rejects(
          issueCert(c, opts as never),
          (e: unknown) => e instanceof SoloError && e.reason === "SOLO_ERR_KERNEL_OPTIONS_INVALID" && e.details.field === field,
          JSON.stringify(opts),
        );
      }
      const leaf = await issueCert(ca, { commonName: "leaf", ips: ["127.0.0.1"], usage: "server" });
      await assert.rejects(
        issueCert(leaf, { commonName: "s", ips: ["::1"], usage: "server" }),
        (e: unknown) => e instanceof SoloError && e.details.field === "ca.certPem",
      );
    });
  });
});
