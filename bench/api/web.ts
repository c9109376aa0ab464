// What the web listener costs per tool call, against the mutual-TLS port, in one run (kernel,
// gateway and clients share the cores). The same `call` of a counter service, four ways, with
// rounds alternating (the starting subject rotates) so drift hits them alike:
//   connect      the baseline: Connect (binary) `kernel.call` on the main port (HTTP/2, mutual TLS)
//   connect-web  the same Connect call on the web listener (HTTP/2, bearer token only)
//   mcp-web-h1   the MCP SDK's client, `call` tool, over the web listener on HTTP/1.1 (undici)
//   mcp-web-h2   the same over HTTP/2
// at 1 and 16 calls in flight.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { bearer, gatewayTransport } from "../../src/gateway/client.ts";
import { startGateway } from "../../src/gateway/server.ts";
import { KernelService } from "../../src/gen/solo/v1/solo_pb.js";
import { openKernel } from "../../src/index.ts";
import { createCa, issueCert } from "../../src/tls/certs.ts";
import { type CaFetch, caFetch, mcpOverHttp, toolCall } from "../../test/support/web.ts";
import { alternating, type Call, printTable } from "../stats.ts";

const COUNTER = "export default { init(){return 0}, handleCall(r,n){ return { reply: n+1, state: n+1 } } }";
const ROUNDS = 5;
const CALLS = { 1: 300, 16: 1500 } as const;

const dir = mkdtempSync(join(tmpdir(), "solo-bench-web-"));
const kernel = await openKernel({ dataDir: dir });
const ca = await createCa({ commonName: "bench ca" });
const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
const clientCert = await issueCert(ca, { commonName: "bench", usage: "client" });
const gateway = await startGateway(kernel, {
  port: 0,
  tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem },
  web: { port: 0 },
});
const web = gateway.web?.url as string;
const token = (await kernel.tokens.grant({ tenant: null, permissions: ["*"] })).token;
await kernel.tenants.create("bench");
await kernel.deploy({ tenant: "bench", service: "counter", code: COUNTER, limits: { mailbox: 100_000 } });
const ref = { tenant: "bench", service: "counter" };

const main = createClient(
  KernelService,
  gatewayTransport({
    url: gateway.url,
    ca: ca.certPem,
    cert: clientCert.certPem,
    key: clientCert.keyPem,
    token,
    protocol: "connect-binary",
  }),
);
const onWeb = createClient(
  KernelService,
  createConnectTransport({
    baseUrl: web,
    httpVersion: "2",
    useBinaryFormat: true,
    nodeOptions: { ca: ca.certPem },
    interceptors: [bearer(token)],
  }),
);

// The MCP SDK's client on undici, the fetch MCP clients use, with only a bearer token.
const fetches = [caFetch(ca.certPem, false), caFetch(ca.certPem, true)];
const mcpOver = (h2: boolean) => mcpOverHttp(`${web}/mcp`, (fetches[h2 ? 1 : 0] as CaFetch).fetch, token, "bench-web");
const h1 = await mcpOver(false);
const h2 = await mcpOver(true);

const subjects: Record<string, Call> = {
  connect: async () => {
    await main.call({ ref });
  },
  "connect-web": async () => {
    await onWeb.call({ ref });
  },
  "mcp-web-h1": toolCall(h1.client, "call", ref),
  "mcp-web-h2": toolCall(h2.client, "call", ref),
};

const rows = await alternating(subjects, { baseline: "connect", rounds: ROUNDS, warmup: 100, calls: CALLS });
printTable(rows);

for (const c of [h1, h2]) {
  await c.transport.terminateSession();
  await c.client.close();
}
await gateway.close(1000);
await kernel.close();
for (const f of fetches) await f.close();
rmSync(dir, { recursive: true, force: true });
