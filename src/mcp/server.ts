import { McpServer, ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { AnyObjectSchema } from "@modelcontextprotocol/sdk/server/zod-compat.js";
import { toJsonSchemaCompat } from "@modelcontextprotocol/sdk/server/zod-json-schema-compat.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import {
  type CallToolResult,
  ErrorCode,
  type Tool as ListedTool,
  ListToolsRequestSchema,
  McpError,
  ReadResourceRequestSchema,
  type ReadResourceResult,
} from "@modelcontextprotocol/sdk/types.js";
import type { Clients } from "../gateway/client.ts";
import { applicationAnswer, errorData } from "../lib/errors/data.ts";
import { jsonReplacer, plainJson } from "../lib/json.ts";
import { GUIDE_URI, readGuide, registerGuide } from "./guide.ts";
import { findingLine, NAME, NAME_RULE, strictInput, TOOLS, type TokenView, type Tool, usableBy } from "./tools.ts";

/** MCP's error code for a resource that does not exist (the MCP specification's -32002). */
export const RESOURCE_NOT_FOUND = -32002;

/** What a model is told at initialize: how to go from nothing to a running service. */
export const INSTRUCTIONS = `Solo runs small JavaScript/TypeScript services (Erlang/OTP-style gen_servers) in sandboxes, supervised, hot-swappable, with a tamper-evident event log. To get a service running:
1. Find your tenant: whoami tells the token's tenant; an unscoped (admin) token lists tenants with tenant_list, and on a fresh data directory creates one with tenant_create.
2. Learn the programming model: read the resource ${GUIDE_URI}, or use the write_service prompt.
3. deploy the code (tenant, service, code; args, grants, limits, supervision, tags as needed). If the analyzer refuses it, the error lists each finding as line, column, rule, message and hint: fix them all and deploy again.
4. call the service (request: any JSON value) or cast to it; read its log lines with logs (pass the result's next as after to read on, waitMs to wait for new ones), and its state with status and list.
5. Change it without losing its state: source shows what runs, swap installs new code (codeChange adapts the state), rollback returns to an earlier version, history lists the versions.
6. Audit: events reads the event log (service_deployed, service_crashed, svc.<service>.<name>, ...), verify checks its hash chain.
Every tool refuses arguments it does not take, naming them. Errors come back as tool results saying what was wrong, the reason (SOLO_ERR_...), the field and a hint. The tools listed are the ones this session's token may use.`;

/**
 * Solo's operations as MCP tools, for models. Every tool acts through the gateway with the
 * caller's token, so a token scoped to one tenant sees only that tenant, and tools/list shows only
 * the tools the token may use (asked once, when the server is connected). Failures come back as
 * tool results with \`isError\` and the precise reason, field and hint (and an analyzer's findings
 * with rule, line, column, message and hint), so a model can correct itself; they are never
 * protocol errors.
 */
export function createMcpServer(solo: Clients, version: string): McpServer {
  return new SoloMcpServer(solo, version);
}

// Each tool's strict input schema, and its tools/list entry, made once for every session.
const INPUTS = new Map(TOOLS.map((t) => [t, strictInput(t.name, t.inputSchema)] as const));
const LISTED = new Map(
  TOOLS.map((t) => {
    const entry: ListedTool = {
      name: t.name,
      title: t.title,
      description: t.description,
      inputSchema: toJsonSchemaCompat(INPUTS.get(t) as AnyObjectSchema, {
        strictUnions: true,
        pipeStrategy: "input",
      }) as ListedTool["inputSchema"],
      annotations: { title: t.title, ...t.annotations },
    };
    return [t, entry] as const;
  }),
);

// The MCP server, which learns its token's permissions before it serves its first request.
class SoloMcpServer extends McpServer {
  private readonly solo: Clients;
  private listed: readonly ListedTool[] = [...LISTED.values()];

  constructor(solo: Clients, version: string) {
    super({ name: "solo", version }, { instructions: INSTRUCTIONS });
    this.solo = solo;
    // tools/call runs the tool named, with arguments the SDK has checked against its strict schema.
    for (const t of TOOLS) {
      this.registerTool(
        t.name,
        { title: t.title, description: t.description, inputSchema: INPUTS.get(t), annotations: { title: t.title, ...t.annotations } },
        async (args: Record<string, unknown>) => toolResult(t, () => t.run(solo, args)),
      );
    }
    // tools/list shows, in the table's order, only the tools the token may use. One it may not use
    // can still be called, and is answered with the kernel's precise (and audited) denial.
    this.server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: [...this.listed] }));
    const readers = registerServiceResources(this, solo);
    registerGuide(this);
    serveReads(this, readers);
  }

  /** Learns which tools the token may use, then serves `transport`. */
  override async connect(transport: Transport): Promise<void> {
    const token = await whoAmI(this.solo);
    // A token that cannot be read (revoked, say) is shown every tool: each call then says why it fails.
    if (token) this.listed = TOOLS.filter((t) => usableBy(t, token)).map((t) => LISTED.get(t) as ListedTool);
    return super.connect(transport);
  }
}

async function whoAmI(solo: Clients): Promise<TokenView | undefined> {
  try {
    const info = (await solo.tokens.whoAmI({})).info;
    return info ? { tenant: info.tenant, permissions: info.permissions } : undefined;
  } catch {
    // The same failure comes back from every tool's call, worded for it.
    return undefined;
  }
}

const MAX_LISTED = 1000;

type Variables = Record<string, string | string[]>;
/** A resource template's reader: what resources/read runs for a URI the template matches. */
interface Reader {
  readonly template: ResourceTemplate;
  readonly read: (uri: URL, v: Variables) => Promise<ReadResourceResult>;
}

// The resource a URI names does not exist (or is not a name at all): MCP's resource-not-found.
function notFound(uri: string, message: string): McpError {
  return new McpError(RESOURCE_NOT_FOUND, message, { uri });
}

// A gateway failure reading a resource, as the MCP error it is: not_found as resource-not-found.
function readFailure(uri: string, err: unknown): McpError {
  const e = errorData(err, "mcp");
  const message = `${e.message} (${e.reason || e.code})${e.hint ? `; hint: ${e.hint}` : ""}`;
  if (e.code === "not_found") return notFound(uri, message);
  if (e.code === "invalid_argument" || e.code === "permission_denied" || e.code === "unauthenticated")
    return new McpError(ErrorCode.InvalidParams, message, { uri, reason: e.reason });
  return new McpError(ErrorCode.InternalError, message, { uri, reason: e.reason });
}

// Each service's source (current and by version) and version history, as resources; listed for
// the tenants the token reaches.
function registerServiceResources(server: McpServer, solo: Clients): Reader[] {
  const refOf = (uri: URL, v: Variables): { tenant: string; service: string } => {
    const tenant = String(v.tenant);
    const service = String(v.service);
    for (const [what, name] of [
      ["tenant", tenant],
      ["service", service],
    ] as const) {
      if (!NAME.safeParse(name).success)
        throw notFound(uri.href, `no resource ${uri.href}: ${what} ${JSON.stringify(name.slice(0, 80))} is not a name (${NAME_RULE})`);
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
  const readers: Reader[] = [];
  const add = (
    name: string,
    template: ResourceTemplate,
    meta: { description: string; mimeType: string },
    read: (uri: URL, v: Variables) => Promise<ReadResourceResult>,
  ): void => {
    const guarded = (uri: URL, v: Variables) =>
      read(uri, v).catch((err: unknown) => Promise.reject(err instanceof McpError ? err : readFailure(uri.href, err)));
    server.registerResource(name, template, meta, guarded);
    readers.push({ template, read: guarded });
  };

  add(
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
      const s = await solo.kernel.source({ ref: refOf(uri, v) });
      return { contents: [{ uri: uri.href, mimeType: "text/typescript", text: s.code }] };
    },
  );

  add(
    "service-version-source",
    new ResourceTemplate("solo://services/{tenant}/{service}/versions/{version}/source", { list: undefined }),
    { description: "The source of one version of a service (versions are listed by its history).", mimeType: "text/typescript" },
    async (uri, v) => {
      const ref = refOf(uri, v);
      const version = Number(v.version);
      if (!/^[1-9]\d{0,9}$/.test(String(v.version)) || !Number.isSafeInteger(version) || version > 0xffffffff)
        throw notFound(
          uri.href,
          `no resource ${uri.href}: version ${JSON.stringify(String(v.version).slice(0, 20))} is not a positive integer`,
        );
      const s = await solo.kernel.source({ ref, version });
      return { contents: [{ uri: uri.href, mimeType: "text/typescript", text: s.code }] };
    },
  );

  add(
    "service-history",
    // Listed with the sources (above).
    new ResourceTemplate("solo://services/{tenant}/{service}/history", { list: undefined }),
    { description: "Every version of a service that ran, oldest first, with the current one marked.", mimeType: "application/json" },
    async (uri, v) => {
      const ref = refOf(uri, v);
      const h = await solo.kernel.history({ ref });
      const versions = h.versions.map((x) => ({
        ...plainJson(x),
        source: `solo://services/${ref.tenant}/${ref.service}/versions/${x.version}/source`,
      }));
      return { contents: [{ uri: uri.href, mimeType: "application/json", text: JSON.stringify({ versions }, jsonReplacer, 2) }] };
    },
  );
  return readers;
}

// resources/read for Solo's resources, in place of the SDK's (which answers an unknown URI with
// invalid params): the guide, then the templates, else MCP's resource-not-found.
function serveReads(server: McpServer, readers: readonly Reader[]): void {
  server.server.setRequestHandler(ReadResourceRequestSchema, async (request) => {
    const href = request.params.uri;
    if (href === GUIDE_URI) return readGuide(new URL(href));
    for (const r of readers) {
      const v = r.template.uriTemplate.match(href);
      if (v) return r.read(new URL(href), v);
    }
    throw notFound(
      href,
      `no resource ${JSON.stringify(href.slice(0, 200))}: Solo serves ${GUIDE_URI}, and solo://services/{tenant}/{service}/source, /history and /versions/{version}/source (resources/list shows them)`,
    );
  });
}

// A tool's outcome: its text (a short line, then every fact) and structured content on success;
// on failure, isError with Solo's reason, field, hint, findings and details, in the text as well,
// so the model can act on them.
async function toolResult(t: Tool, fn: () => Promise<Record<string, unknown>>): Promise<CallToolResult> {
  try {
    const data = plainJson(await fn());
    return { content: [{ type: "text", text: t.text(data) }], structuredContent: data };
  } catch (err) {
    const e = errorData(err, "mcp");
    const answer = applicationAnswer(e);
    const lines = answer
      ? [
          `${answer.service} answered the call with an error of its own (the service's answer, not a Solo failure): ${answer.code}: ${answer.message}`,
          ...(answer.details !== undefined ? [`details: ${JSON.stringify(answer.details)}`] : []),
        ]
      : [`${e.message} (${e.reason || e.code})`];
    const { findings, ...rest } = (e.details ?? {}) as {
      findings?: Array<{ rule: string; line: number; column: number; message: string; severity?: string; hint?: string }>;
    };
    for (const f of findings ?? []) lines.push(findingLine(f));
    if (e.field) lines.push(`field: ${e.field}`);
    if (e.hint) lines.push(`hint: ${e.hint}`);
    if (!answer && Object.keys(rest).length > 0) lines.push(`details: ${JSON.stringify(rest, jsonReplacer)}`);
    return {
      isError: true,
      content: [{ type: "text", text: lines.join("\n") }],
      structuredContent: { error: plainJson(e) },
    };
  }
}
