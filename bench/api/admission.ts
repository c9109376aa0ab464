// Admission under a flood: a quiet tenant's calls through the gateway, alone and while another
// tenant floods it, in the same run. Targets (the gateway issue): the quiet tenant's success rate
// stays >= 99% and its median latency <= 2x its solo figure.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { gatewayTransport } from "../../src/gateway/client.ts";
import { startGateway } from "../../src/gateway/server.ts";
import { KernelService } from "../../src/gen/solo/v1/solo_pb.js";
import { openKernel } from "../../src/index.ts";
import { createCa, issueCert } from "../../src/tls/certs.ts";
import { fmtMs, fmtRatio, median, percentile, printTable, verdict } from "../stats.ts";
import { startFlood } from "./flood.ts";

const QUIET_CALLS = 300;
const FLOOD_IN_FLIGHT = 512;
const ROUNDS = 3;
// A handler with a little work, so calls take scheduler time as real ones do.
const CODE = `export default { handleCall(r, s) { let x = 0; for (let i = 0; i < 2000; i++) x += i; return { reply: x, state: s } } }`;

const dir = mkdtempSync(join(tmpdir(), "solo-bench-admission-"));
const kernel = await openKernel({ dataDir: dir });
const ca = await createCa({ commonName: "bench" });
const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
const client = await issueCert(ca, { commonName: "bench", usage: "client" });
const gateway = await startGateway(kernel, { port: 0, tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem } });

async function tenantClient(tenant: string) {
  await kernel.tenants.create(tenant);
  await kernel.deploy({ tenant, service: "work", code: CODE });
  const { token } = await kernel.tokens.grant({ tenant, permissions: ["call:*"] });
  return createClient(
    KernelService,
    gatewayTransport({ url: gateway.url, ca: ca.certPem, cert: client.certPem, key: client.keyPem, token, protocol: "connect-binary" }),
  );
}

const quiet = await tenantClient("quiet");
await tenantClient("noisy");

async function quietRound(): Promise<{ latencies: number[]; ok: number }> {
  const latencies: number[] = [];
  let ok = 0;
  for (let i = 0; i < QUIET_CALLS; i++) {
    const started = performance.now();
    try {
      await quiet.call({ ref: { tenant: "quiet", service: "work" } });
      ok++;
    } catch {
      // counted as a failure
    }
    latencies.push(performance.now() - started);
  }
  return { latencies, ok };
}

let floodOk = 0;
let floodShed = 0;
let floodOther = 0;
const noisyToken = (await kernel.tokens.grant({ tenant: "noisy", permissions: ["call:*"] })).token;

function flood(): { started: Promise<void>; stop: () => Promise<void> } {
  const f = startFlood({
    url: gateway.url,
    ca: ca.certPem,
    cert: client.certPem,
    key: client.keyPem,
    token: noisyToken,
    tenant: "noisy",
    inFlight: FLOOD_IN_FLIGHT,
  });
  return {
    started: f.started,
    stop: async () => {
      const counts = await f.stop();
      floodOk += counts.ok;
      floodShed += counts.resourceExhausted;
      floodOther += counts.unauthenticated + counts.other;
    },
  };
}

await quietRound(); // warm-up
const solo: number[] = [];
const flooded: number[] = [];
let soloOk = 0;
let floodedOk = 0;
for (let r = 0; r < ROUNDS; r++) {
  const a = await quietRound();
  solo.push(...a.latencies);
  soloOk += a.ok;
  const f = flood();
  await f.started;
  await new Promise((res) => setTimeout(res, 300));
  const b = await quietRound();
  flooded.push(...b.latencies);
  floodedOk += b.ok;
  await f.stop();
}

const total = ROUNDS * QUIET_CALLS;
const ratio = median(flooded) / median(solo);
const success = floodedOk / total;
console.log(
  `admission: 2 cores; the quiet tenant makes ${QUIET_CALLS} sequential calls per round, alone and while the noisy tenant keeps ${FLOOD_IN_FLIGHT} calls in flight from another process; ${ROUNDS} rounds; default admission limits`,
);
printTable([
  ["quiet tenant", "calls", "succeeded", "median", "p99"],
  ["alone", String(total), String(soloOk), fmtMs(median(solo)), fmtMs(percentile(solo, 99))],
  ["under the flood", String(total), String(floodedOk), fmtMs(median(flooded)), fmtMs(percentile(flooded, 99))],
]);
printTable([
  ["measure", "value", "target", "verdict"],
  ["quiet success rate under the flood", `${(success * 100).toFixed(2)}%`, ">= 99%", verdict(success >= 0.99)],
  ["quiet median latency, flooded / alone", fmtRatio(ratio), "<= 2.00x", verdict(ratio <= 2)],
]);
console.log(
  `the flood: ${floodOk} served, ${floodShed} shed (SOLO_ERR_OVERLOADED), ${floodOther} failed otherwise; admission shed ${gateway.admission.shed} in all`,
);

await gateway.close(1000);
await kernel.close();
rmSync(dir, { recursive: true, force: true });
