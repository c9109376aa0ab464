import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { adminToken } from "../gateway/credentials.ts";
import { gatewayCore, inProcessClients } from "../gateway/local.ts";
import { openKernel } from "../index.ts";
import { VERSION } from "../lib/version.ts";
import { createMcpServer } from "./server.ts";

/** What `solo mcp --embedded` takes. */
export interface EmbeddedOptions {
  readonly dataDir: string;
  readonly database?: string;
  /** Act with this token; default the data directory's admin token (made if missing). */
  readonly token?: string;
}

/**
 * `solo mcp --embedded`: a kernel in this process on the data directory, served as MCP tools on
 * stdin/stdout with no gateway and no port. Tools still pass the gateway's edge in process
 * (validation, admission, the token's permissions), so a narrower `--token` is honoured exactly.
 * Runs until stdin closes or a signal; then terminates services and releases the data directory.
 */
export async function serveEmbedded(o: EmbeddedOptions): Promise<void> {
  const kernel = await openKernel({ dataDir: o.dataDir, ...(o.database ? { database: o.database } : {}) });
  let token: string;
  try {
    token = o.token ?? (await adminToken(kernel));
  } catch (err) {
    await kernel.close();
    throw err;
  }
  const server = createMcpServer(inProcessClients(gatewayCore(kernel), token), VERSION);
  const transport = new StdioServerTransport();
  let closing: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    closing ??= (async () => {
      await server.close().catch(() => undefined); // the client may be gone already
      await kernel.close();
    })();
    return closing;
  };
  transport.onclose = () => void stop();
  process.stdin.once("end", () => void stop().then(() => process.exit(0)));
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void stop().then(() => process.exit(0)));
  await server.connect(transport);
  process.stderr.write(`solo mcp: an embedded kernel on ${kernel.dataDir} (${kernel.store.kind}), serving MCP on stdio\n`);
}
