import type { ErrorCode } from "./reasons.ts";

/** The CLI's exit codes (docs/cli.md). */
export const EXIT = {
  ok: 0,
  /** Any other failure. */
  failed: 1,
  /** The command line is wrong: an unknown command or flag, a missing argument. */
  usage: 2,
  /** The token is missing, malformed, expired or revoked, or lacks the permission. */
  auth: 3,
  /** No such service, tenant, token, secret or version. */
  notFound: 4,
  /** The kernel cannot be reached, or the service is down (crashed, restarting, breaker open). */
  unavailable: 5,
  /** The kernel refused the request as invalid (a bad name, code the analyzer rejects, a limit). */
  invalid: 6,
} as const;

/** How an error of one code travels on each of Solo's interfaces. */
export interface Transport {
  /** The gRPC status number (Connect's `Code` has the same values). */
  readonly grpc: number;
  /** The HTTP status on plain-HTTP paths (`/mcp`, `/metrics`, a throttled request). */
  readonly http: number;
  /** The `solo` CLI's exit code. */
  readonly exit: (typeof EXIT)[keyof typeof EXIT];
}

/**
 * The one map from Solo's error codes to every interface: gateway (Connect, gRPC), plain HTTP
 * (MCP, metrics), and the CLI. Exhaustive over the codes, so a new code cannot travel unmapped.
 */
export const TRANSPORT: Readonly<Record<ErrorCode, Transport>> = {
  canceled: { grpc: 1, http: 499, exit: EXIT.failed },
  unknown: { grpc: 2, http: 500, exit: EXIT.failed },
  invalid_argument: { grpc: 3, http: 400, exit: EXIT.invalid },
  deadline_exceeded: { grpc: 4, http: 504, exit: EXIT.unavailable },
  not_found: { grpc: 5, http: 404, exit: EXIT.notFound },
  already_exists: { grpc: 6, http: 409, exit: EXIT.invalid },
  permission_denied: { grpc: 7, http: 403, exit: EXIT.auth },
  resource_exhausted: { grpc: 8, http: 429, exit: EXIT.failed },
  failed_precondition: { grpc: 9, http: 400, exit: EXIT.invalid },
  aborted: { grpc: 10, http: 409, exit: EXIT.failed },
  out_of_range: { grpc: 11, http: 400, exit: EXIT.invalid },
  unimplemented: { grpc: 12, http: 501, exit: EXIT.failed },
  internal: { grpc: 13, http: 500, exit: EXIT.failed },
  unavailable: { grpc: 14, http: 503, exit: EXIT.unavailable },
  data_loss: { grpc: 15, http: 500, exit: EXIT.failed },
  unauthenticated: { grpc: 16, http: 401, exit: EXIT.auth },
};

const BY_GRPC: ReadonlyMap<number, ErrorCode> = new Map(Object.entries(TRANSPORT).map(([name, t]) => [t.grpc, name as ErrorCode]));

/** Solo's name for a gRPC status number (`invalid_argument`, ...); `unknown` for one it lacks. */
export function codeOfGrpc(grpc: number): ErrorCode {
  return BY_GRPC.get(grpc) ?? "unknown";
}

// ---- hints in the reader's words ------------------------------------------------------------

/**
 * The interfaces an error reaches its reader through: the embedding API (`openKernel`), the
 * network API (gRPC, Connect), the `solo` CLI, and MCP tools. A hint that names an operation or an
 * option names it as that reader knows it: `solo tenant create acme` on a terminal, the
 * `tenant_create` tool to a model, `TenantService.Create` to an RPC client, `tenants.create(name)`
 * to an embedder.
 */
export type Surface = "api" | "rpc" | "cli" | "mcp";

/** The request header with which Solo's own clients (the CLI, MCP's tools) ask for their words. */
export const SURFACE_HEADER = "solo-surface";

/** The surface a request's {@link SURFACE_HEADER} names; anything else is the network API's. */
export function surfaceOf(header: string | null | undefined): Surface {
  return header === "cli" || header === "mcp" ? header : "rpc";
}

/**
 * The operations and options hints refer to, in each interface's words. `{tenant}`, `{service}`
 * and `{name}` are filled from the hint's own values where it has them, and shown as `<tenant>`
 * otherwise. Exhaustive over the surfaces, so a hint cannot lack a reader's words.
 */
export const WORDS = {
  "tenant.create": {
    api: "tenants.create(name)",
    rpc: "TenantService.Create",
    cli: "solo tenant create {name}",
    mcp: "the tenant_create tool",
  },
  "tenant.create.reuse": {
    api: "tenants.create(name, { reuseName: true })",
    rpc: "TenantService.Create with reuse_name",
    cli: "solo tenant create {name} --reuse-name",
    mcp: "the tenant_create tool with reuseName: true",
  },
  "tenant.update": {
    api: "tenants.update",
    rpc: "TenantService.Update",
    cli: "solo tenant update {name} --limits",
    mcp: "the tenant_update tool",
  },
  "tenant.memory": {
    api: "the tenant's memoryBytes",
    rpc: "the tenant's memory_bytes (TenantService.Update)",
    cli: "the tenant's memoryBytes (solo tenant update {name} --limits)",
    mcp: "the tenant's memoryBytes (the tenant_update tool)",
  },
  "tokens.list": {
    api: "tokens.list()",
    rpc: "TokenService.List",
    cli: "solo token ls",
    mcp: "solo token ls (an operator's CLI; MCP has no tool for it)",
  },
  "token.pass": {
    api: "pass a token granted by an admin (kernel.as(token))",
    rpc: "send a token granted by an admin as authorization: Bearer <token>",
    cli: "pass a token granted by an admin with --token or $SOLO_TOKEN",
    mcp: "configure your MCP client to send a token granted by an admin as Authorization: Bearer <token> (or start solo mcp with --token)",
  },
  "token.whoami": {
    api: "kernel.as(token).whoami()",
    rpc: "TokenService.WhoAmI",
    cli: "solo token whoami",
    mcp: "the whoami tool",
  },
  "services.list": {
    api: "list(tenant)",
    rpc: "KernelService.List",
    cli: "solo ls {tenant}",
    mcp: "the list tool",
  },
  "services.usage": {
    api: "list() usage",
    rpc: "the usage KernelService.List reports",
    cli: "the usage solo ls {tenant} shows",
    mcp: "the usage the list tool reports",
  },
  "service.versions": {
    api: "versions(tenant, service)",
    rpc: "KernelService.History",
    cli: "solo history {tenant}/{service}",
    mcp: "the history tool",
  },
  "service.restart": {
    api: "restart(tenant, service)",
    rpc: "KernelService.Restart",
    cli: "solo restart {tenant}/{service}",
    mcp: "the restart tool",
  },
  "service.swap": {
    api: "swap()",
    rpc: "KernelService.Swap",
    cli: "solo swap {tenant}/{service} <file>",
    mcp: "the swap tool",
  },
  "service.kill": {
    api: "kill()",
    rpc: "KernelService.Kill",
    cli: "solo kill {tenant}/{service}",
    mcp: "the kill tool",
  },
  "call.timeout": {
    api: "timeoutMs",
    rpc: "timeout_ms",
    cli: "--timeout",
    mcp: "timeoutMs",
  },
  "secret.put": {
    api: "secrets.put(tenant, name, value)",
    rpc: "SecretService.Put",
    cli: "solo secret put {tenant} {name}",
    mcp: "solo secret put {tenant} {name} (an operator's CLI: secrets' values never pass through MCP)",
  },
  "kernel.start": {
    api: "npx solo start",
    rpc: "npx solo start",
    cli: "solo start (or npx solo start), or point --url at it",
    mcp: "npx solo start, or serve MCP with a kernel of its own: solo mcp --embedded",
  },
  "kernel.dataDir": {
    api: "dataDir",
    rpc: "data directory",
    cli: "--data-dir",
    mcp: "--data-dir",
  },
} as const satisfies Record<string, Readonly<Record<Surface, string>>>;

/** A term of {@link WORDS}. */
export type Term = keyof typeof WORDS;

// A term in a hint: ⟦term|key=value|...⟧. The brackets do not occur in Solo's own text, and a
// hint shown unrendered still reads.
const OPEN = "\u27e6";
const CLOSE = "\u27e7";
const MARK = /\u27e6([a-zA-Z.-]+)((?:\|[a-z]+=[^|\u27e7]*)*)\u27e7/g;

/**
 * A term for a hint, to be said in the reader's words: `words("tenant.create", { name })` in
 * `hint: \`${words("tenant.create", { name })} makes one\``.
 */
export function words(term: Term, values: Readonly<Record<string, string>> = {}): string {
  const args = Object.entries(values)
    .map(([k, v]) => `|${k}=${encodeURIComponent(v)}`)
    .join("");
  return `${OPEN}${term}${args}${CLOSE}`;
}

/** Whether a hint names terms (and so reads differently on each surface). */
export function hasWords(hint: string): boolean {
  return hint.includes(OPEN);
}

/** A hint in the words of one surface. */
export function renderHint(hint: string, surface: Surface): string {
  if (!hasWords(hint)) return hint;
  return hint.replace(MARK, (whole, term: string, args: string) => {
    const said = (WORDS as Record<string, Readonly<Record<Surface, string>>>)[term]?.[surface];
    if (said === undefined) return whole;
    const values = new Map(
      args
        .split("|")
        .slice(1)
        .map((kv) => {
          const at = kv.indexOf("=");
          return [kv.slice(0, at), decodeURIComponent(kv.slice(at + 1))] as const;
        }),
    );
    return said.replace(/\{([a-z]+)\}/g, (_, key: string) => values.get(key) ?? `<${key}>`);
  });
}
