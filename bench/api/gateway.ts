// What the mTLS gateway costs per call, all in one process (the kernel, its gateway and the
// clients share the machine's cores). (1) Calls/s and latency at 64 concurrent HTTP/2 streams over
// mutual TLS with a bearer token, on a counter service, through the gRPC transport and the Connect
// (binary) transport of @connectrpc/connect-node: over one HTTP/2 connection (the transport's
// default) and over 4 connections (4 transports taking the calls in turn). (2) The baseline, in the
// same run: a bare node:http2 secure server (the same certificates, requestCert +
// rejectUnauthorized, the same compatibility (req, res) API the gateway is served through) echoing
// a ~30-byte body, driven by one bare node:http2 client session at 64 concurrent streams. (3) For
// context, kernel.call and kernel.as(token).call in-process at 64 in flight on the same service, and
// the gateway's edge (protovalidate, token reach, admission) timed alone. (4) h2load against the
// gateway for Connect JSON, when h2load is installed and can present a client certificate. (5) The
// CLI's cold start: `solo --json ls bench` as a child process against the gateway, and `node -e 0`.
// All rounds of all subjects alternate (the starting subject rotates), so drift hits them alike.
import { execFile, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createSecureServer, connect as http2Connect } from "node:http2";
import type { AddressInfo } from "node:net";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { bearer } from "../../src/gateway/client.ts";
import { credentialPaths } from "../../src/gateway/credentials.ts";
import { startGateway } from "../../src/gateway/server.ts";
import { Shedder } from "../../src/gateway/shedder.ts";
import { CallRequestSchema, KernelService } from "../../src/gen/solo/v1/solo_pb.js";
import { openKernel } from "../../src/index.ts";
import { createCa, issueCert } from "../../src/tls/certs.ts";
import { type Call, fmtMs, fmtRate, fmtRatio, median, percentile, pooled, printTable, type Round, round, verdict } from "../stats.ts";

const COUNTER = "export default { init(){return 0}, handleCall(r,n){ return { reply: n+1, state: n+1 } } }";
const TENANT = "bench";
const SERVICE = "counter";

const IN_FLIGHT = 64;
const CONNECTIONS = [1, 4] as const;
const ROUNDS = 5;
// Each subject is warmed up for this long; each measured round is sized from the warm-up rate to
// last about ROUND_MS, within the bounds.
const WARMUP_MS = 1200;
const WARMUP_CHUNK = 1000;
const ROUND_MS = 800;
const MIN_ROUND_CALLS = 1000;
const MAX_ROUND_CALLS = 400_000;
const MICRO_ROUNDS = 5;
const MICRO_OPS = 50_000;
const COLD_RUNS = 10;
const H2LOAD_SECONDS = 5;
const TARGET_RATE = 20_000;
const TARGET_RATIO = 0.4;

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CLI = fileURLToPath(new URL("../../src/cli/solo.js", import.meta.url));
const execFileP = promisify(execFile);
const us = (ms: number): string => (Number.isFinite(ms) ? `${(ms * 1000).toFixed(1)} µs` : "-");
const ns = (n: number): string => (Number.isFinite(n) ? `${Math.round(n).toLocaleString("en-US")} ns` : "-");
const range = (xs: readonly number[], f: (x: number) => string): string => `${f(Math.min(...xs))}..${f(Math.max(...xs))}`;

// ---- the kernel, the certificates and the gateway ----------------------------------------------

const dataDir = mkdtempSync(join(tmpdir(), "solo-bench-"));
const kernel = await openKernel({ dataDir });
await kernel.tenants.create(TENANT);
await kernel.deploy({ tenant: TENANT, service: SERVICE, code: COUNTER });
const token = (await kernel.tokens.grant({ tenant: null, permissions: ["*"], label: "bench gateway" })).token;

const ca = await createCa({ commonName: "solo bench ca" });
const serverCert = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
const clientCert = await issueCert(ca, { commonName: "solo-admin", usage: "client" });
const tls = { cert: serverCert.certPem, key: serverCert.keyPem, ca: ca.certPem };
const nodeOptions = { ca: ca.certPem, cert: clientCert.certPem, key: clientCert.keyPem };
const gateway = await startGateway(kernel, { port: 0, tls });

// ---- the subjects ---------------------------------------------------------------------------------

const auth = bearer(token);
const CALL = { ref: { tenant: TENANT, service: SERVICE } };
let gatewayCalls = 0;
let kernelCalls = 0;

type TransportBase = Pick<Parameters<typeof createGrpcTransport>[0], "baseUrl" | "nodeOptions" | "interceptors">;

/** Calls through `connections` transports (each its own HTTP/2 connection), taking turns. */
function viaGateway(make: (o: TransportBase) => Transport, connections: number): Call {
  const clients = Array.from({ length: connections }, () =>
    createClient(KernelService, make({ baseUrl: gateway.url, nodeOptions, interceptors: [auth] })),
  );
  let turn = 0;
  return async () => {
    const client = clients[turn++ % connections] as (typeof clients)[number];
    const res = await client.call(CALL);
    if (typeof res.reply?.kind.value !== "number") throw new Error(`the gateway replied ${JSON.stringify(res.reply?.kind)}`);
    gatewayCalls++;
  };
}

// The baseline: echo the body back, as the gateway would answer a call, without Connect or a kernel.
const echoServer = createSecureServer(
  { ...tls, requestCert: true, rejectUnauthorized: true, allowHTTP1: false, minVersion: "TLSv1.2" },
  (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      res.end(Buffer.concat(chunks));
    });
  },
);
echoServer.on("tlsClientError", () => undefined);
await new Promise<void>((resolve) => echoServer.listen(0, "127.0.0.1", resolve));
const echoSession = http2Connect(`https://127.0.0.1:${(echoServer.address() as AddressInfo).port}`, nodeOptions);
echoSession.on("error", () => undefined);
const ECHO_BODY = Buffer.from('{"tenant":"bench","n":1234567}');
const echo: Call = () =>
  new Promise<void>((resolve, reject) => {
    const req = echoSession.request({ ":method": "POST", ":path": "/echo", "content-type": "application/octet-stream" });
    let got = 0;
    req.on("data", (c: Buffer) => {
      got += c.length;
    });
    req.on("end", () => (got === ECHO_BODY.length ? resolve() : reject(new Error(`the echo returned ${got} bytes`))));
    req.on("error", reject);
    req.end(ECHO_BODY);
  });

const session = kernel.as(token);
const inProcessSystem: Call = async () => {
  await kernel.call(TENANT, SERVICE);
  kernelCalls++;
};
const inProcessToken: Call = async () => {
  await session.call(TENANT, SERVICE);
  kernelCalls++;
};

interface Subject {
  readonly name: string;
  readonly connections: string;
  readonly kind: "gateway" | "baseline" | "kernel";
  readonly call: Call;
  size: number;
  readonly rounds: Round[];
}
const subjects: Subject[] = [];
const add = (name: string, connections: string, kind: Subject["kind"], call: Call): void => {
  subjects.push({ name, connections, kind, call, size: 0, rounds: [] });
};
for (const n of CONNECTIONS) {
  add(
    "gateway, gRPC",
    String(n),
    "gateway",
    viaGateway((o) => createGrpcTransport(o), n),
  );
  add(
    "gateway, Connect binary",
    String(n),
    "gateway",
    viaGateway((o) => createConnectTransport({ ...o, httpVersion: "2", useBinaryFormat: true }), n),
  );
}
add("bare node:http2 echo (baseline)", "1", "baseline", echo);
add("kernel.call in-process (system)", "-", "kernel", inProcessSystem);
add("kernel.as(token).call in-process", "-", "kernel", inProcessToken);
const baseline = subjects.find((s) => s.kind === "baseline") as Subject;

// ---- measurement ------------------------------------------------------------------------------------

console.log(
  `gateway: ${availableParallelism()} cores (load average ${loadavg()[0]?.toFixed(2)}), ${kernel.schedulers} schedulers (the counter runs on one); ${IN_FLIGHT} in flight; each subject warmed up ${WARMUP_MS} ms, then ${ROUNDS} rounds of about ${ROUND_MS} ms, all subjects alternating`,
);

/** Rounds of WARMUP_CHUNK calls for at least WARMUP_MS; the rate of the last one. */
async function warmUp(call: Call): Promise<number> {
  const started = performance.now();
  let rate = 0;
  while (performance.now() - started < WARMUP_MS) rate = (await round(call, IN_FLIGHT, WARMUP_CHUNK)).rate;
  return rate;
}

for (const s of subjects) {
  const rate = await warmUp(s.call);
  s.size = Math.min(MAX_ROUND_CALLS, Math.max(MIN_ROUND_CALLS, Math.round((rate * ROUND_MS) / 1000)));
}
for (let r = 0; r < ROUNDS; r++) {
  for (let k = 0; k < subjects.length; k++) {
    const s = subjects[(r + k) % subjects.length] as Subject;
    s.rounds.push(await round(s.call, IN_FLIGHT, s.size));
  }
}

// Every call, through the gateway or in-process, must have reached the service exactly once.
const count = await kernel.call(TENANT, SERVICE);
const expected = gatewayCalls + kernelCalls + 1;
const counted = count === expected;
const shed = gateway.admission.shed;

// ---- the edge alone: protovalidate, token reach, admission --------------------------------------

const validator = createValidator();
const callRequest = create(CallRequestSchema, CALL);
const shedder = new Shedder();
const micro: { what: string; op: () => unknown }[] = [
  { what: "protovalidate of a CallRequest", op: () => validator.validate(CallRequestSchema, callRequest).kind },
  { what: "kernel.as(token).reach() (the lane of the call)", op: () => kernel.as(token).reach().valid },
  {
    what: "Shedder.admit + release, a free lane (awaited)",
    op: async () => {
      await shedder.admit("*");
      shedder.release("*");
    },
  },
];
const microNs = micro.map(() => [] as number[]);
for (let r = -1; r < MICRO_ROUNDS; r++) {
  for (const [k, m] of micro.entries()) {
    const started = performance.now();
    for (let i = 0; i < MICRO_OPS; i++) {
      const x = m.op();
      if (x instanceof Promise) await x;
    }
    // Round -1 is the warm-up.
    if (r >= 0) microNs[k]?.push(((performance.now() - started) * 1e6) / MICRO_OPS);
  }
}

// ---- h2load, Connect JSON ---------------------------------------------------------------------------

const workDir = mkdtempSync(join(tmpdir(), "solo-bench-"));
let h2loadLine: string;
const which = spawnSync("sh", ["-c", "command -v h2load"], { encoding: "utf8" });
const h2load = which.status === 0 ? which.stdout.trim() : "";
if (h2load === "") {
  h2loadLine = "h2load: not installed (Debian package nghttp2-client); skipped";
} else {
  const help = spawnSync(h2load, ["--help"], { encoding: "utf8" });
  const version = /nghttp2\/[\w.-]+/.exec(spawnSync(h2load, ["--version"], { encoding: "utf8" }).stdout ?? "")?.[0] ?? "version unknown";
  if (!/--cert\b/.test(help.stdout ?? "") || !/--key\b/.test(help.stdout ?? "")) {
    h2loadLine = `h2load (${version}, ${h2load}): cannot present a client certificate (h2load --help lists no --cert/--key option), and the gateway admits only mutual TLS; skipped`;
  } else {
    const certPath = join(workDir, "client.crt");
    const keyPath = join(workDir, "client.key");
    const bodyPath = join(workDir, "call.json");
    writeFileSync(certPath, clientCert.certPem, { mode: 0o644 });
    writeFileSync(keyPath, clientCert.keyPem, { mode: 0o600 });
    writeFileSync(bodyPath, JSON.stringify(CALL));
    const args = [
      `${gateway.url}/solo.v1.KernelService/Call`,
      "-c",
      "1",
      "-m",
      String(IN_FLIGHT),
      "-t",
      "1",
      "-D",
      String(H2LOAD_SECONDS),
      "--warm-up-time",
      "1",
      "-H",
      "content-type: application/json",
      "-H",
      `authorization: Bearer ${token}`,
      "-d",
      bodyPath,
      "--cert",
      certPath,
      "--key",
      keyPath,
    ];
    try {
      const { stdout } = await execFileP(h2load, args, { encoding: "utf8", timeout: (H2LOAD_SECONDS + 30) * 1000 });
      const unit = (v: string, u: string): number => Number(v) * (u === "us" ? 0.001 : u === "s" ? 1000 : 1);
      const fin = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(stdout);
      const t = /time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/.exec(stdout);
      const req = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(stdout);
      h2loadLine = fin
        ? `h2load (${version}), Connect JSON, 1 connection x ${IN_FLIGHT} streams, ${H2LOAD_SECONDS} s: ${fmtRate(Number(fin[1]), " req/s")}` +
          (t
            ? `, latency mean ${fmtMs(unit(t[5] as string, t[6] as string))} (min ${fmtMs(unit(t[1] as string, t[2] as string))}, max ${fmtMs(unit(t[3] as string, t[4] as string))}, sd ${fmtMs(unit(t[7] as string, t[8] as string))})`
            : "") +
          (req ? `; ${req[3]} of ${req[2]} done succeeded, ${req[4]} failed, ${req[5]} errored` : "")
        : `h2load: could not read its output:\n${stdout}`;
    } catch (err) {
      h2loadLine = `h2load failed: ${(err as Error).message}`;
    }
  }
}

// ---- the CLI's cold start -----------------------------------------------------------------------------

// The data directory layout `solo start` leaves, with only what a client reads.
const paths = credentialPaths(join(workDir, "data"));
mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
writeFileSync(paths.caCert, ca.certPem, { mode: 0o644 });
writeFileSync(paths.adminCert, clientCert.certPem, { mode: 0o644 });
writeFileSync(paths.adminKey, clientCert.keyPem, { mode: 0o600 });
writeFileSync(paths.adminToken, `${token}\n`, { mode: 0o600 });
const cliEnv: NodeJS.ProcessEnv = { ...process.env, SOLO_URL: gateway.url, SOLO_DATA_DIR: join(workDir, "data") };
for (const k of ["SOLO_TOKEN", "SOLO_CERT", "SOLO_KEY", "SOLO_CA"]) delete cliEnv[k];
const cliArgs = ["--disable-warning=ExperimentalWarning", CLI, "--json", "ls", TENANT];
const nodeArgs = ["-e", "0"];

/** Runs a child to its end (asynchronously: the gateway it talks to runs in this process); its wall time. */
async function timed(args: readonly string[]): Promise<{ ms: number; stdout: string }> {
  const started = performance.now();
  const { stdout } = await execFileP(process.execPath, args, { cwd: ROOT, env: cliEnv, encoding: "utf8" });
  return { ms: performance.now() - started, stdout };
}
// One of each first, unmeasured (file caches), then the two alternating.
const first = await timed(cliArgs);
await timed(nodeArgs);
let listed = false;
try {
  const services = JSON.parse(first.stdout) as { service?: string }[];
  listed = Array.isArray(services) && services.some((s) => s.service === SERVICE);
} catch {
  listed = false;
}
const cold = { cli: [] as number[], node: [] as number[] };
for (let i = 0; i < COLD_RUNS; i++) {
  cold.cli.push((await timed(cliArgs)).ms);
  cold.node.push((await timed(nodeArgs)).ms);
}

await gateway.close(1000);
echoSession.close();
await new Promise<void>((resolve) => echoServer.close(() => resolve()));
await kernel.close();
rmSync(dataDir, { recursive: true, force: true });
rmSync(workDir, { recursive: true, force: true });

// ---- report -------------------------------------------------------------------------------------------

const rateOf = (s: Subject): number => median(s.rounds.map((x) => x.rate));
const baseRate = rateOf(baseline);
const rows: string[][] = [
  ["measure", "connections", "rounds", "median calls/s", "rounds min..max", "µs/call", "latency p50", "latency p99", "target", "verdict"],
];
for (const s of subjects) {
  const rates = s.rounds.map((x) => x.rate);
  const lat = pooled(s.rounds);
  const isGateway = s.kind === "gateway";
  rows.push([
    s.name,
    s.connections,
    `${s.rounds.length} x ${s.size}`,
    fmtRate(rateOf(s)),
    range(rates, (x) => fmtRate(x, "")),
    us(1000 / rateOf(s)),
    fmtMs(median(lat)),
    fmtMs(percentile(lat, 99)),
    isGateway ? `>= ${fmtRate(TARGET_RATE)}` : "-",
    isGateway ? verdict(rateOf(s) >= TARGET_RATE) : "",
  ]);
}
console.log("");
printTable(rows);
console.log(
  `${IN_FLIGHT} calls in flight throughout; µs/call = 1e6 / median calls/s (amortized over the ${IN_FLIGHT} in flight); latency = one call's round trip, pooled over the rounds`,
);

const ratios: string[][] = [["ratio (calls/s)", "connections", "gateway", "baseline (bare http2 echo)", "ratio", "target", "verdict"]];
for (const s of subjects.filter((x) => x.kind === "gateway")) {
  const ratio = rateOf(s) / baseRate;
  ratios.push([
    `${s.name} / baseline`,
    s.connections,
    fmtRate(rateOf(s)),
    fmtRate(baseRate),
    fmtRatio(ratio),
    `>= ${fmtRatio(TARGET_RATIO)}`,
    verdict(ratio >= TARGET_RATIO),
  ]);
}
console.log("");
printTable(ratios);

const best = subjects.filter((x) => x.kind === "gateway").reduce((a, b) => (rateOf(b) > rateOf(a) ? b : a));
const bestUs = 1000 / rateOf(best);
const microRows: string[][] = [
  ["the gateway's edge, per call (timed alone)", "median ns/op", "rounds min..max", "share of the best gateway µs/call"],
];
let edgeNs = 0;
for (const [k, m] of micro.entries()) {
  const xs = microNs[k] ?? [];
  edgeNs += median(xs);
  microRows.push([m.what, ns(median(xs)), range(xs, ns), `${((median(xs) / 1e6 / bestUs) * 100).toFixed(1)}%`]);
}
microRows.push(["all three", ns(edgeNs), "-", `${((edgeNs / 1e6 / bestUs) * 100).toFixed(1)}%`]);
console.log("");
printTable(microRows);
console.log(`${MICRO_ROUNDS} rounds of ${MICRO_OPS.toLocaleString("en-US")} operations after one of warm-up`);

const kernelToken = subjects.find((s) => s.name.startsWith("kernel.as")) as Subject;
const kernelUs = 1000 / rateOf(kernelToken);
console.log(
  `kernel share: kernel.as(token).call in-process costs ${us(kernelUs)}/call against ${us(bestUs)}/call through the gateway (${best.name}, ${best.connections} connection(s)): ` +
    `${((kernelUs / bestUs) * 100).toFixed(0)}% of it; the gateway (TLS, HTTP/2, Connect, the edge) adds ${us(bestUs - kernelUs)}/call ` +
    `(amortized figures at ${IN_FLIGHT} in flight; the schedulers' threads overlap the main thread, so shares are indicative)`,
);

console.log("");
console.log(h2loadLine);

const coldRows: string[][] = [["cold start (child process, wall time)", "runs", "median", "min..max"]];
coldRows.push([
  `solo --json ls ${TENANT} (over the gateway, mTLS + token)`,
  String(COLD_RUNS),
  fmtMs(median(cold.cli)),
  range(cold.cli, fmtMs),
]);
coldRows.push(["node -e 0", String(COLD_RUNS), fmtMs(median(cold.node)), range(cold.node, fmtMs)]);
coldRows.push(["difference (the CLI's own start and call)", "", fmtMs(median(cold.cli) - median(cold.node)), ""]);
console.log("");
printTable(coldRows);
console.log(`${process.execPath}; one unmeasured run of each first, then the two alternating`);

console.log(
  counted
    ? `\ncheck: the counter saw each of the ${expected - 1} calls (${gatewayCalls} through the gateway) exactly once; ${shed} shed by admission`
    : `\nCHECK FAILED: the counter is at ${String(count)} after ${expected - 1} calls (expected ${expected})`,
);
console.log(listed ? `check: solo ls listed ${SERVICE}` : `CHECK FAILED: solo ls printed ${JSON.stringify(first.stdout.slice(0, 200))}`);
if (!counted || !listed || shed !== 0) process.exitCode = 1;
