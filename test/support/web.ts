/**
 * What the web listener's tests and benchmark connect with: undici's fetch (what MCP clients run
 * on) trusting Solo's CA, and the MCP SDK's own client over it with a bearer token.
 * @internal
 */
import type { TLSSocket } from "node:tls";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Agent, buildConnector, fetch as undiciFetch } from "undici";

/** A fetch over its own undici agent, and the protocol each of its connections negotiated (ALPN). */
export interface CaFetch {
  readonly fetch: typeof fetch;
  readonly protocols: string[];
  close(): Promise<void>;
}

/**
 * A fetch that trusts `ca`, over HTTP/2 when `h2` (undici 8 offers it unless told not to), else
 * HTTP/1.1; with `client`, it presents that certificate (the gateway's main port wants one).
 */
export function caFetch(ca: string, h2: boolean, client?: { readonly certPem: string; readonly keyPem: string }): CaFetch {
  const protocols: string[] = [];
  const connector = buildConnector({ ca, allowH2: h2, ...(client ? { cert: client.certPem, key: client.keyPem } : {}) });
  const agent = new Agent({
    allowH2: h2,
    connect: (opts, cb) =>
      connector(opts, (...args) => {
        const socket = args[1];
        if (socket) protocols.push(String((socket as TLSSocket).alpnProtocol));
        cb(...args);
      }),
  });
  // undici's fetch and the DOM's differ in their types only (RequestInit, Response).
  const f = ((url: string | URL, init?: RequestInit) =>
    undiciFetch(url, { ...(init as object), dispatcher: agent } as Parameters<typeof undiciFetch>[1])) as unknown as typeof fetch;
  return { fetch: f, protocols, close: () => agent.close() };
}

/** The MCP SDK's client, connected to `url` (an `/mcp` endpoint) over `f` with only a bearer token. */
export async function mcpOverHttp(
  url: string,
  f: typeof fetch,
  token: string,
  name = "solo-test",
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    fetch: f,
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name, version: "1.0.0" });
  await client.connect(transport);
  return { client, transport };
}

/** One `tools/call` as a benchmark's call: a tool error fails it. */
export function toolCall(client: Client, name: string, args: Record<string, unknown>): () => Promise<void> {
  return async () => {
    const r = await client.callTool({ name, arguments: args });
    if (r.isError) throw new Error(JSON.stringify(r.content));
  };
}
