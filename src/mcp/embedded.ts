import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { adminToken } from "../gateway/credentials.ts";
import { gatewayCore, inProcessClients } from "../gateway/local.ts";
import { type Kernel, openKernel } from "../index.ts";
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
  // Until the server is connected, no request can be under way.
  let pending: Pending = { idle: async () => undefined };
  // Once: the transport's close (which server.close() causes) calls back here, and must find the
  // shutdown under way rather than start another.
  const stop = (): Promise<void> => {
    closing ??= Promise.resolve().then(() => shutdown(kernel, server, pending));
    return closing;
  };
  const exit = (): void =>
    void stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`solo mcp: closing the kernel failed: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
  transport.onclose = () => void stop().catch(() => undefined); // reported by exit(), which the end of stdin runs
  process.stdin.once("end", exit);
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, exit);
  await server.connect(transport);
  pending = trackRequests(transport);
  process.stderr.write(`solo mcp: an embedded kernel on ${kernel.dataDir} (${kernel.store.kind}), serving MCP on stdio\n`);
}

/** How long requests already under way may run on when stdin closes, before the kernel closes under them. */
const GRACE_MS = 2000;

// Answers every request under way, then closes: they finish (or, past the grace, fail as the
// kernel closes under them, each with its error), and only then is the transport closed (which
// would drop their answers).
async function shutdown(kernel: Kernel, server: McpServer, pending: Pending): Promise<void> {
  await pending.idle(GRACE_MS);
  try {
    await kernel.close();
  } finally {
    await pending.idle();
    await server.close().catch((err: unknown) => process.stderr.write(`solo mcp: closing the transport: ${String(err)}\n`));
  }
}

interface Pending {
  /** Resolves once no request awaits its answer, or after `ms`. */
  idle(ms?: number): Promise<void>;
}

// The requests the transport received and has not answered yet.
function trackRequests(transport: Transport): Pending {
  const open = new Set<string | number>();
  let waiters: Array<() => void> = [];
  const onmessage = transport.onmessage;
  transport.onmessage = (message, extra) => {
    if ("method" in message && "id" in message) open.add(message.id);
    onmessage?.(message, extra);
  };
  const send = transport.send.bind(transport);
  transport.send = async (message, options) => {
    await send(message, options);
    if (!("method" in message) && "id" in message && message.id !== undefined && open.delete(message.id) && open.size === 0) {
      for (const w of waiters) w();
      waiters = [];
    }
  };
  return {
    idle: (ms) =>
      open.size === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            waiters.push(resolve);
            if (ms !== undefined) setTimeout(resolve, ms).unref();
          }),
  };
}
