import { fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import type { Clients } from "../cli/connection.ts";
import { errorData, jsonReplacer, plainJson } from "../cli/output.ts";

const NAME = z
  .string()
  .regex(/^[a-z](?:[a-z0-9_-]{0,61}[a-z0-9])?$/, "1-63 of a-z 0-9 - _, starting with a letter, ending with a letter or digit");
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
          ...(args !== undefined ? { args: fromJson(ValueSchema, args as JsonValue) } : {}),
          ...(grants !== undefined ? { grants: grants as { [k: string]: JsonValue } } : {}),
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
          ...(request !== undefined ? { request: fromJson(ValueSchema, request as JsonValue) } : {}),
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
          ...(message !== undefined ? { message: fromJson(ValueSchema, message as JsonValue) } : {}),
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

  return server;
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
