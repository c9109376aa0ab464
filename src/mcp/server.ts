import { McpServer, ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { Clients } from "../gateway/client.ts";
import { applicationAnswer, errorData } from "../lib/errors/data.ts";
import { jsonReplacer, plainJson } from "../lib/json.ts";
import { registerGuide } from "./guide.ts";
import { NAME, NAME_RULE, TOOLS } from "./tools.ts";

/**
 * Solo's operations as MCP tools, for models. Every tool acts through the gateway with the
 * caller's token, so a token scoped to one tenant sees only that tenant. Failures come back as
 * tool results with `isError` and the precise reason, field and hint (and an analyzer's findings
 * with rule, line, column, message and hint), so a model can correct itself; they are never
 * protocol errors.
 */
export function createMcpServer(solo: Clients, version: string): McpServer {
  const server = new McpServer({ name: "solo", version });
  // tools/list shows them in the table's order; tools/call runs the one named, with arguments
  // the SDK has checked against its schema.
  for (const t of TOOLS) {
    server.registerTool(t.name, { description: t.description, inputSchema: t.inputSchema }, async (args) =>
      toolResult(() => t.run(solo, args)),
    );
  }
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
    const e = errorData(err, "mcp");
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

// A tool's outcome: structured content (and its text) on success; on failure, isError with Solo's
// reason, field, hint and details, so the model can act on them.
async function toolResult(fn: () => Promise<Record<string, unknown>>): Promise<CallToolResult> {
  try {
    const data = await fn();
    return {
      content: [{ type: "text", text: JSON.stringify(data, jsonReplacer) }],
      structuredContent: plainJson(data),
    };
  } catch (err) {
    const e = errorData(err, "mcp");
    const answer = applicationAnswer(e);
    const lines = answer
      ? [
          `${answer.service} answered the call with an error of its own (the service's answer, not a Solo failure): ${answer.code}: ${answer.message}`,
          ...(answer.details !== undefined ? [`details: ${JSON.stringify(answer.details)}`] : []),
        ]
      : [`${e.message} (${e.reason || e.code})`];
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
