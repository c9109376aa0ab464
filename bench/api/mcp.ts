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
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { Agent, fetch as undiciFetch } from "undici";
import { gatewayTransport } from "../../src/gateway/client.ts";
import { gatewayCore, inProcessClients } from "../../src/gateway/local.ts";
import { startGateway } from "../../src/gateway/server.ts";
import { KernelService } from "../../src/gen/solo/v1/solo_pb.js";
import { openKernel } from "../../src/index.ts";
import { createMcpServer } from "../../src/mcp/server.ts";
import { createCa, issueCert } from "../../src/tls/certs.ts";
import { alternating, type Call, fmtMs, median, percentile, printTable } from "../stats.ts";

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

const agent = new Agent({ allowH2: true, connect: { ca: ca.certPem, cert: clientCert.certPem, key: clientCert.keyPem } });
const h2fetch = ((url: string | URL, init?: RequestInit) =>
  undiciFetch(url, { ...(init as object), dispatcher: agent } as Parameters<typeof undiciFetch>[1])) as unknown as typeof fetch;
async function httpClient(): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp`), {
    fetch: h2fetch,
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name: "bench", version: "1" });
  await client.connect(transport);
  return { client, transport };
}
const http = await httpClient();

const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
const memServer = createMcpServer(inProcessClients(gatewayCore(kernel), token), "bench");
await memServer.connect(serverSide);
const mem = new Client({ name: "bench-mem", version: "1" });
await mem.connect(clientSide);

const toolCall =
  (c: Client): Call =>
  async () => {
    const r = await c.callTool({ name: "call", arguments: ref });
    if (r.isError) throw new Error(JSON.stringify(r.content));
  };
const subjects: Record<string, Call> = {
  connect: async () => {
    await connect.call({ ref });
  },
  "mcp-http": toolCall(http.client),
  "mcp-mem": toolCall(mem),
};

console.log(
  `load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}; ${ROUNDS} rounds per subject, alternating`,
);
const rows = await alternating(subjects, { baseline: "connect", rounds: ROUNDS, warmup: 200, calls: CALLS });
printTable(rows);

// Opening a session: initialize and the initialized notification over HTTP/2, then DELETE.
const opens = new Float64Array(SESSIONS);
for (let i = 0; i < SESSIONS; i++) {
  const started = performance.now();
  const s = await httpClient();
  opens[i] = performance.now() - started;
  await s.transport.terminateSession();
  await s.client.close();
}
console.log(
  `\nMCP session open over HTTP/2 (initialize + initialized): p50 ${fmtMs(median(opens))}, p99 ${fmtMs(percentile(opens, 99))} (${SESSIONS} sessions)`,
);

await http.transport.terminateSession();
await http.client.close();
await mem.close();
await gateway.close(1000);
await kernel.close();
await agent.close();
rmSync(dir, { recursive: true, force: true });
