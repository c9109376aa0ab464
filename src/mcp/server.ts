import { fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { McpServer, ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import type { Clients } from "../gateway/client.ts";
import { errorData } from "../lib/errors/data.ts";
import { SoloError } from "../lib/errors/errors.ts";
import { jsonReplacer, plainJson } from "../lib/json.ts";
import { registerGuide } from "./guide.ts";

const NAME_RULE = "1-63 of a-z 0-9 - _, starting with a letter, ending with a letter or digit";
const NAME = z.string().regex(/^[a-z](?:[a-z0-9_-]{0,61}[a-z0-9])?$/, NAME_RULE);
const MAX_CODE = 1024 * 1024;

/**
 * Solo's operations as MCP tools, for models. Every tool acts through the gateway with the
 * caller's token, so a token scoped to one tenant sees only that tenant. Failures come back as
 * tool results with `isError` and the precise reason, field and hint (and an analyzer's findings
 * with rule, line, column, message and hint), so a model can correct itself; they are never
 * protocol errors.
 */
export function createMcpServer(solo: Clients, version: string): McpServer {
  const server = new McpServer({ name: "solo", version });
  const ref = { tenant: NAME.describe("the tenant"), service: NAME.describe("the service") };

  server.registerTool(
    "deploy",
    {
      description:
        "Deploy a service: one JavaScript or TypeScript module whose default export has init(args) returning the state and handleCall(request, state) returning { reply, state } (also handleCast, handleInfo). The analyzer checks the code first; if it refuses, the result is an error whose findings give rule, line, column, message and hint for each problem. A running service of that name must be killed first, or use swap.",
      inputSchema: {
        ...ref,
        code: z.string().min(1).max(MAX_CODE).describe("the module's source"),
        args: z.unknown().optional().describe("the argument of init (any JSON value)"),
        grants: z.record(z.unknown()).optional().describe('powers, e.g. { "call": ["ledger"], "storage": true, "secrets": ["API_KEY"] }'),
      },
    },
    async ({ tenant, service, code, args, grants }) =>
      run(async () => {
        const d = await solo.kernel.deploy({
          ref: { tenant, service },
          code,
          ...(args !== undefined ? { args: value(args, "args") } : {}),
          ...(grants !== undefined ? { grants: shallow(grants, "grants") as { [k: string]: JsonValue } } : {}),
        });
        return { version: d.deployment?.version ?? 0, findings: findings(d.deployment?.findings ?? []) };
      }),
  );

  server.registerTool(
    "swap",
    {
      description:
        "Hot-swap a running service's code, keeping its state (through codeChange(fromVersion, state) if the new code has one). If the new version crashes within the rollback window the old one comes back.",
      inputSchema: { ...ref, code: z.string().min(1).max(MAX_CODE) },
    },
    async ({ tenant, service, code }) =>
      run(async () => {
        const d = await solo.kernel.swap({ ref: { tenant, service }, code });
        return { version: d.deployment?.version ?? 0, findings: findings(d.deployment?.findings ?? []) };
      }),
  );

  server.registerTool(
    "rollback",
    {
      description: "Swap a service back to an earlier version (default: the one before the running one).",
      inputSchema: { ...ref, version: z.number().int().positive().optional() },
    },
    async ({ tenant, service, version }) =>
      run(async () => ({
        version: (await solo.kernel.rollback({ ref: { tenant, service }, ...(version ? { version } : {}) })).deployment?.version ?? 0,
      })),
  );

  server.registerTool(
    "history",
    {
      description:
        "Every version of a service that ran, oldest first: version, deployedAt, codeBytes, sha256, grants, and which one is current. Read a version's code with source.",
      inputSchema: ref,
    },
    async ({ tenant, service }) =>
      run(async () => ({ versions: (await solo.kernel.history({ ref: { tenant, service } })).versions.map(plainJson) })),
  );

  server.registerTool(
    "source",
    {
      description: "A service's source exactly as deployed (default: the version running now); use it before a swap to edit what runs.",
      inputSchema: { ...ref, version: z.number().int().positive().optional().describe("a version from history") },
    },
    async ({ tenant, service, version }) =>
      run(async () => {
        const s = await solo.kernel.source({ ref: { tenant, service }, ...(version ? { version } : {}) });
        return { version: s.version, deployedAt: s.deployedAt, sha256: s.sha256, code: s.code };
      }),
  );

  server.registerTool(
    "call",
    {
      description: "Send a request to a service's handleCall and return its reply.",
      inputSchema: {
        ...ref,
        request: z.unknown().optional().describe("any JSON value"),
        timeoutMs: z.number().int().min(1).max(600_000).optional(),
      },
    },
    async ({ tenant, service, request, timeoutMs }) =>
      run(async () => {
        const r = await solo.kernel.call({
          ref: { tenant, service },
          ...(request !== undefined ? { request: value(request, "request") } : {}),
          ...(timeoutMs ? { timeoutMs } : {}),
        });
        return { reply: r.reply === undefined ? null : toJson(ValueSchema, r.reply) };
      }),
  );

  server.registerTool(
    "cast",
    { description: "Send a message to a service's handleCast without waiting.", inputSchema: { ...ref, message: z.unknown().optional() } },
    async ({ tenant, service, message }) =>
      run(async () => {
        await solo.kernel.cast({
          ref: { tenant, service },
          ...(message !== undefined ? { message: value(message, "message") } : {}),
        });
        return { sent: true };
      }),
  );

  server.registerTool(
    "list",
    { description: "A tenant's services with their state, version, restarts and usage.", inputSchema: { tenant: NAME } },
    async ({ tenant }) => run(async () => ({ services: (await solo.kernel.list({ tenant })).services.map(plainJson) })),
  );

  server.registerTool(
    "status",
    { description: "One service's state, version, usage, limits, grants, breaker and last crash.", inputSchema: ref },
    async ({ tenant, service }) =>
      run(async () => ({ service: plainJson((await solo.kernel.status({ ref: { tenant, service } })).service) })),
  );

  server.registerTool(
    "kill",
    { description: "Stop a service for good (it runs terminate if idle); deploy it again to start a new version.", inputSchema: ref },
    async ({ tenant, service }) =>
      run(async () => {
        await solo.kernel.kill({ ref: { tenant, service } });
        return { killed: true };
      }),
  );

  server.registerTool(
    "restart",
    { description: "Stop a service if it runs and start its current version afresh (revives a failed service).", inputSchema: ref },
    async ({ tenant, service }) =>
      run(async () => ({ version: (await solo.kernel.restart({ ref: { tenant, service } })).deployment?.version ?? 0 })),
  );

  server.registerTool(
    "events",
    {
      description:
        "Events from the tamper-evident log, oldest first: by tenant, type (e.g. service_crashed, svc.<service>.<name>), subject, and after an id. Use the last id you saw as sinceId to read on.",
      inputSchema: {
        tenant: NAME.optional(),
        types: z.array(z.string().max(200)).max(64).optional(),
        subject: z.string().max(256).optional(),
        sinceId: z.number().int().min(0).optional(),
        limit: z.number().int().min(1).max(1000).optional(),
      },
    },
    async ({ tenant, types, subject, sinceId, limit }) =>
      run(async () => {
        const page = await solo.kernel.queryEvents({
          filter: { ...(tenant ? { tenant } : {}), types: types ?? [], ...(subject ? { subject } : {}) },
          ...(sinceId ? { afterId: BigInt(sinceId) } : {}),
          limit: limit ?? 100,
        });
        return {
          events: page.events.map((e) => ({
            id: Number(e.id),
            type: e.type,
            tenant: e.tenant || null,
            subject: e.subject || null,
            payload: e.payload ? toJson(ValueSchema, e.payload) : null,
            at: new Date(Number(e.timestamp / 1000n)).toISOString(),
          })),
        };
      }),
  );

  server.registerTool(
    "verify",
    { description: "Walk the event log's hash chain and report whether it is whole.", inputSchema: {} },
    async () => run(async () => plainJson(await solo.kernel.verify({}))),
  );

  server.registerTool(
    "secret_names",
    {
      description: "The names of a tenant's secrets (values are never shown; grant a service secrets to let it read them).",
      inputSchema: { tenant: NAME },
    },
    async ({ tenant }) =>
      run(async () => ({ secrets: (await solo.secrets.list({ tenant })).secrets.map((s) => ({ name: s.name, updatedAt: s.updatedAt })) })),
  );

  server.registerTool(
    "attenuate_token",
    {
      description:
        "Derive a token from the one in use, holding only the given permissions (a subset of yours, e.g. call:counter, events:read) and expiring no later; give it to another agent or tool.",
      inputSchema: {
        permissions: z.array(z.string().min(1).max(300)).min(1).max(64),
        ttlMs: z.number().int().min(1000).optional(),
        label: z.string().max(200).optional(),
      },
    },
    async ({ permissions, ttlMs, label }) =>
      run(async () => {
        const g = await solo.tokens.attenuate({ permissions, ...(ttlMs ? { ttlMs: BigInt(ttlMs) } : {}), ...(label ? { label } : {}) });
        return { token: g.token, id: g.info?.id ?? "", permissions: g.info?.permissions ?? [], expiresAt: g.info?.expiresAt || null };
      }),
  );

  registerServiceResources(server, solo);
  registerGuide(server);
  return server;
}

const MAX_LISTED = 1000;

// Each service's source (current and by version) and version history, as resources; listed for
// the tenants the token reaches.
function registerServiceResources(server: McpServer, solo: Clients): void {
  const refOf = (v: Record<string, string | string[]>): { tenant: string; service: string } => {
    const tenant = String(v.tenant);
    const service = String(v.service);
    for (const [what, name] of [
      ["tenant", tenant],
      ["service", service],
    ] as const) {
      if (!NAME.safeParse(name).success) throw new Error(`${what} ${JSON.stringify(name.slice(0, 80))} is not a name (${NAME_RULE})`);
    }
    return { tenant, service };
  };
  const visible = async (): Promise<Array<{ tenant: string; service: string }>> => {
    const me = await solo.tokens.whoAmI({});
    const tenants = me.info?.tenant
      ? [me.info.tenant]
      : (await solo.tenants.list({}).catch(() => ({ tenants: [] }))).tenants.map((t) => t.name);
    const out: Array<{ tenant: string; service: string }> = [];
    for (const tenant of tenants) {
      if (out.length >= MAX_LISTED) break;
      // A tenant whose services the token may not read lists nothing rather than failing the list.
      const listed = await solo.kernel.list({ tenant }).catch(() => ({ services: [] }));
      for (const s of listed.services) out.push({ tenant, service: s.service });
    }
    return out.slice(0, MAX_LISTED);
  };
  const failed = (err: unknown): Error => {
    const e = errorData(err);
    return new Error(`${e.message} (${e.reason || e.code})${e.hint ? `; hint: ${e.hint}` : ""}`);
  };

  server.registerResource(
    "service-source",
    new ResourceTemplate("solo://services/{tenant}/{service}/source", {
      // Lists the history resources too: the services the token can read are found once per list.
      list: async () => ({
        resources: (await visible()).flatMap((r) => [
          { uri: `solo://services/${r.tenant}/${r.service}/source`, name: `${r.tenant}/${r.service}`, mimeType: "text/typescript" },
          {
            uri: `solo://services/${r.tenant}/${r.service}/history`,
            name: `${r.tenant}/${r.service} history`,
            mimeType: "application/json",
          },
        ]),
      }),
    }),
    { description: "A service's source as deployed, the version running now.", mimeType: "text/typescript" },
    async (uri, v) => {
      const ref = refOf(v);
      const s = await solo.kernel.source({ ref }).catch((err: unknown) => Promise.reject(failed(err)));
      return { contents: [{ uri: uri.href, mimeType: "text/typescript", text: s.code }] };
    },
  );

  server.registerResource(
    "service-version-source",
    new ResourceTemplate("solo://services/{tenant}/{service}/versions/{version}/source", { list: undefined }),
    { description: "The source of one version of a service (versions are listed by its history).", mimeType: "text/typescript" },
    async (uri, v) => {
      const ref = refOf(v);
      const version = Number(v.version);
      if (!Number.isSafeInteger(version) || version < 1)
        throw new Error(`version ${JSON.stringify(String(v.version))} is not a positive integer`);
      const s = await solo.kernel.source({ ref, version }).catch((err: unknown) => Promise.reject(failed(err)));
      return { contents: [{ uri: uri.href, mimeType: "text/typescript", text: s.code }] };
    },
  );

  server.registerResource(
    "service-history",
    // Listed with the sources (above).
    new ResourceTemplate("solo://services/{tenant}/{service}/history", { list: undefined }),
    { description: "Every version of a service that ran, oldest first, with the current one marked.", mimeType: "application/json" },
    async (uri, v) => {
      const ref = refOf(v);
      const h = await solo.kernel.history({ ref }).catch((err: unknown) => Promise.reject(failed(err)));
      const versions = h.versions.map((x) => ({
        ...plainJson(x),
        source: `solo://services/${ref.tenant}/${ref.service}/versions/${x.version}/source`,
      }));
      return { contents: [{ uri: uri.href, mimeType: "application/json", text: JSON.stringify({ versions }, jsonReplacer, 2) }] };
    },
  );
}

const MAX_DEPTH = 64;

// A tool's JSON argument as a protobuf Value; nesting deeper than any real message is refused
// precisely here (converting it would exhaust the stack).
function value(v: unknown, field: string) {
  return fromJson(ValueSchema, shallow(v, field) as JsonValue);
}

// A tool's JSON argument, refused if it nests deeper than MAX_DEPTH levels.
function shallow(v: unknown, field: string): unknown {
  const stack: Array<[unknown, number]> = [[v, 1]];
  for (let top = stack.pop(); top; top = stack.pop()) {
    const [x, depth] = top;
    if (x === null || typeof x !== "object") continue;
    if (depth > MAX_DEPTH) {
      throw new SoloError("SOLO_ERR_REQUEST_INVALID", `${field} is nested deeper than ${MAX_DEPTH} levels`, {
        field,
        hint: "flatten the value",
      });
    }
    for (const child of Object.values(x)) stack.push([child, depth + 1]);
  }
  return v;
}

// A tool's outcome: structured content (and its text) on success; on failure, isError with Solo's
// reason, field, hint and details, so the model can act on them.
async function run(fn: () => Promise<Record<string, unknown>>): Promise<CallToolResult> {
  try {
    const data = await fn();
    return {
      content: [{ type: "text", text: JSON.stringify(data, jsonReplacer) }],
      structuredContent: plainJson(data),
    };
  } catch (err) {
    const e = errorData(err);
    const lines = [`${e.message} (${e.reason || e.code})`];
    const found = (
      e.details as { findings?: Array<{ rule: string; line: number; column: number; message: string; hint?: string }> } | undefined
    )?.findings;
    for (const f of found ?? [])
      lines.push(`line ${f.line}, column ${f.column}: ${f.rule}: ${f.message}${f.hint ? ` (hint: ${f.hint})` : ""}`);
    if (e.field) lines.push(`field: ${e.field}`);
    if (e.hint) lines.push(`hint: ${e.hint}`);
    return {
      isError: true,
      content: [{ type: "text", text: lines.join("\n") }],
      structuredContent: { error: plainJson(e) },
    };
  }
}

function findings(fs: ReadonlyArray<{ rule: string; severity: string; message: string; line: number; column: number; hint: string }>) {
  return fs.map((f) => ({ rule: f.rule, severity: f.severity, message: f.message, line: f.line, column: f.column, hint: f.hint }));
}
