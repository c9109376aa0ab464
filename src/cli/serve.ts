import type { ConnectionLimits } from "../gateway/connections.ts";
import { adminToken, credentialPaths, ensureCredentials } from "../gateway/credentials.ts";
import { startGateway } from "../gateway/server.ts";
import { createLogger, createTelemetry } from "../gateway/telemetry.ts";
import type { WebOptions } from "../gateway/web.ts";
import { openKernel } from "../index.ts";

/** What `solo start` takes. */
export interface ServeOptions {
  readonly dataDir: string;
  readonly database?: string;
  readonly host: string;
  readonly port: number;
  /** Extra names for the server certificate (the gateway's address as other machines know it). */
  readonly hostnames: readonly string[];
  /** What all tenants' memory limits may add up to, in bytes (default: half the host's memory). */
  readonly memoryBudgetBytes?: number;
  /** The edge's timeouts and caps (defaults: DEFAULT_CONNECTION_LIMITS). */
  readonly connections?: ConnectionLimits;
  /** The web listener (default 127.0.0.1:7444 with Solo's server certificate); `false` opens none. */
  readonly web?: WebOptions | false;
}

/**
 * `solo start` (and `npm start`): the kernel on its data directory, and the gateway on one port
 * with zero configuration: on first start it makes a CA, a server certificate, an admin client
 * certificate and an admin token in the data directory (`tls/`). Runs until SIGINT or SIGTERM,
 * then stops admitting, lets calls in flight finish, terminates services and exits 0.
 */
export async function serve(o: ServeOptions): Promise<void> {
  const logger = createLogger();
  const kernel = await openKernel({
    dataDir: o.dataDir,
    ...(o.database ? { database: o.database } : {}),
    ...(o.memoryBudgetBytes !== undefined ? { memoryBudgetBytes: o.memoryBudgetBytes } : {}),
    // Services' log lines, as structured logs tagged with their service.
    onLog: (e) => logger[e.level]({ tenant: e.tenant, service: e.service, at: e.at }, e.text),
  });
  let credentials: Awaited<ReturnType<typeof ensureCredentials>>;
  try {
    credentials = await ensureCredentials(kernel.dataDir, { hostnames: o.hostnames });
    await adminToken(kernel);
  } catch (err) {
    await kernel.close();
    throw err;
  }
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  try {
    gateway = await startGateway(kernel, {
      host: o.host,
      port: o.port,
      tls: { cert: credentials.serverCertPem, key: credentials.serverKeyPem, ca: credentials.caPem },
      telemetry: createTelemetry(logger),
      ...(o.connections ? { connections: o.connections } : {}),
      ...(o.web !== false ? { web: o.web ?? {} } : {}),
    });
  } catch (err) {
    await kernel.close();
    throw err;
  }
  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`\n${signal}: no new calls; finishing those in flight, then terminating services...\n`);
    try {
      await gateway.close(5000);
      await kernel.close();
      process.stdout.write("stopped.\n");
      process.exit(0);
    } catch (err) {
      process.stderr.write(`failed to stop cleanly: ${(err as Error).message}\n`);
      process.exit(1);
    }
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
  const paths = credentialPaths(kernel.dataDir);
  // Printed only once the signal handlers are in place, so a signal sent on seeing it is handled.
  process.stdout.write(
    [
      `Solo kernel running (pid ${process.pid})`,
      `  gateway         ${gateway.url}  (gRPC, gRPC-Web, Connect; mutual TLS + bearer token)`,
      `  data directory  ${kernel.dataDir}`,
      `  store           ${kernel.store.kind} at ${kernel.store.location}`,
      `  schedulers      ${kernel.schedulers} worker threads running QuickJS-ng (WebAssembly)`,
      `  memory budget   ${Math.round(kernel.stats().memory.budgetBytes / 1024 / 1024)} MiB for all tenants together (--memory-budget)`,
      `  admin           certificate ${paths.adminCert}, key ${paths.adminKey}, token ${paths.adminToken}`,
      `  CA              ${paths.caCert} (sha256 ${credentials.caFingerprint.slice(0, 23)}...)`,
      `  metrics         ${gateway.url}/metrics (Prometheus; mutual TLS + a token with services:read)`,
      `  MCP             ${gateway.url}/mcp (Streamable HTTP; mutual TLS + bearer token), or npx solo mcp (stdio)`,
      ...(gateway.web
        ? [
            `  web             ${gateway.web.url}  (HTTP/1.1 and HTTP/2; bearer token, no client certificate; --no-web to close)`,
            `  MCP (web)       ${gateway.web.url}/mcp  (for Claude Code, Cursor, the MCP SDKs: Authorization: Bearer <token>;`,
            `                  they trust Solo's CA with NODE_EXTRA_CA_CERTS=${paths.caCert})`,
          ]
        : []),
      "Try:            npx solo tenant create acme && npx solo ls acme",
      `                (the CLI finds the admin credentials in ${kernel.dataDir} by itself; npx solo --help lists every command)`,
      "Press Ctrl-C to stop.",
      "",
    ].join("\n"),
  );
}
