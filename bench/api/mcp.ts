// What MCP costs per tool call, all in one process (kernel, gateway and clients share the cores).
// The same `call` of a counter service, three ways, with rounds alternating (the starting subject
// rotates) so drift hits them alike:
//   connect   the baseline: a Connect (binary) call through the gateway over HTTP/2 + mutual TLS
//   mcp-http  the MCP SDK's client over Streamable HTTP at /mcp on the same gateway (undici's fetch,
//             HTTP/2 + mutual TLS): JSON-RPC, the SDK's server, then the gateway's handlers in process
//   mcp-mem   the MCP SDK's client and server linked in memory, the server acting through the
//             gateway's handlers in process: MCP's own cost without HTTP
// at 1 and 16 calls in flight; and the cost of opening an MCP session (initialize + initialized).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { gatewayTransport } from "../../src/gateway/client.ts";
import { gatewayCore, inProcessClients } from "../../src/gateway/local.ts";
import { startGateway } from "../../src/gateway/server.ts";
import { KernelService } from "../../src/gen/solo/v1/solo_pb.js";
import { openKernel } from "../../src/index.ts";
import { createMcpServer } from "../../src/mcp/server.ts";
import { createCa, issueCert } from "../../src/tls/certs.ts";
import { caFetch, mcpOverHttp, toolCall } from "../../test/support/web.ts";
import { alternating, type Call, fmtMs, fmtRatio, median, percentile, printTable } from "../stats.ts";

const COUNTER = "export default { init(){return 0}, handleCall(r,n){ return { reply: n+1, state: n+1 } } }";
const ROUNDS = 5;
const CALLS = { 1: 400, 16: 2000 } as const;
const SESSIONS = 100;

const dir = mkdtempSync(join(tmpdir(), "solo-bench-mcp-"));
const kernel = await openKernel({ dataDir: dir });
const ca = await createCa({ commonName: "bench ca" });
const server = await issueCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
const clientCert = await issueCert(ca, { commonName: "bench", usage: "client" });
const gateway = await startGateway(kernel, { port: 0, tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem } });
const token = (await kernel.tokens.grant({ tenant: null, permissions: ["*"] })).token;
await kernel.tenants.create("bench");
await kernel.deploy({ tenant: "bench", service: "counter", code: COUNTER, limits: { mailbox: 100_000 } });

const connect = createClient(
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
const ref = { tenant: "bench", service: "counter" };

const h2 = caFetch(ca.certPem, true, clientCert);
const httpClient = () => mcpOverHttp(`${gateway.url}/mcp`, h2.fetch, token, "bench");
const http = await httpClient();

const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
const memServer = createMcpServer(inProcessClients(gatewayCore(kernel), token), "bench");
await memServer.connect(serverSide);
const mem = new Client({ name: "bench-mem", version: "1" });
await mem.connect(clientSide);

const subjects: Record<string, Call> = {
  connect: async () => {
    await connect.call({ ref });
  },
  "mcp-http": toolCall(http.client, "call", ref),
  "mcp-mem": toolCall(mem, "call", ref),
};

const rows = await alternating(subjects, { baseline: "connect", rounds: ROUNDS, warmup: 200, calls: CALLS });
printTable(rows);

// Opening a session: initialize and the initialized notification over HTTP/2, then DELETE; against
// the same-run baseline of two Connect calls (as many requests) on the gateway, taken in turn.
const opens = new Float64Array(SESSIONS);
const pairs = new Float64Array(SESSIONS);
for (let i = 0; i < SESSIONS; i++) {
  let started = performance.now();
  const s = await httpClient();
  opens[i] = performance.now() - started;
  await s.transport.terminateSession();
  await s.client.close();
  started = performance.now();
  await connect.call({ ref });
  await connect.call({ ref });
  pairs[i] = performance.now() - started;
}
console.log(
  `\nMCP session open over HTTP/2 (initialize + initialized): p50 ${fmtMs(median(opens))}, p99 ${fmtMs(percentile(opens, 99))}; two Connect calls: p50 ${fmtMs(median(pairs))}; ratio ${fmtRatio(median(opens) / median(pairs))} (${SESSIONS} of each, in turn)`,
);

await http.transport.terminateSession();
await http.client.close();
await mem.close();
await gateway.close(1000);
await kernel.close();
await h2.close();
rmSync(dir, { recursive: true, force: true });
