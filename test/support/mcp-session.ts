/**
 * A model's session with Solo over MCP, as a script any connected MCP client can run: over
 * `solo mcp --embedded` (src/mcp/session.test.ts), and over any other transport.
 * @internal
 */

import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";

/** What a tool answered, as a model reads it: its text, and whether it is an error. */
async function ask(client: Client, name: string, args: Record<string, unknown>): Promise<{ text: string; isError: boolean }> {
  const r = (await client.callTool({ name, arguments: args })) as CallToolResult;
  const text = r.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");
  return { text, isError: r.isError === true };
}

async function ok(client: Client, name: string, args: Record<string, unknown>): Promise<string> {
  const r = await ask(client, name, args);
  assert.equal(r.isError, false, `${name} failed: ${r.text}`);
  return r.text;
}

async function fails(client: Client, name: string, args: Record<string, unknown>): Promise<string> {
  const r = await ask(client, name, args);
  assert.equal(r.isError, true, `${name} should have failed: ${r.text}`);
  return r.text;
}

const BROKEN = `import fs from "fs";
export default {
  init() { return { count: 0 } },
  handleCall(req, s) { s.count += 1; return { reply: s.count, state: s } },
};`;

const V1 = `export default {
  init(args) { return { count: args?.start ?? 0 } },
  handleCall(req, s) {
    s.count += 1;
    solo.log("v1 counted", s.count);
    return { reply: s.count, state: s };
  },
  codeChange(from, s) { return s },
};`;

const V2 = `export default {
  handleCall(req, s) {
    s.count += 100;
    solo.log("v2 counted", s.count);
    return { reply: s.count, state: s };
  },
  codeChange(from, s) { return s },
};`;

/**
 * What a model does with Solo over MCP, from nothing: a tenant, a refused deploy fixed from its
 * findings, calls, logs, a swap keeping state, a rollback, the events and the chain. Reads only
 * the tools' text. `tenant` must not exist yet; the client's token must be unscoped.
 */
export async function modelSession(client: Client, tenant: string): Promise<void> {
  const init = client.getInstructions() ?? "";
  assert.match(init, /tenant_create/);
  assert.match(init, /solo:\/\/guide\/programming-model/);
  const tools = (await client.listTools()).tools.map((t) => t.name);
  for (const name of ["tenant_create", "deploy", "call", "logs", "swap", "rollback", "events", "verify"])
    assert.ok(tools.includes(name), `${name} in ${tools.join(" ")}`);

  // No such tenant yet: the list says so, rather than showing an empty tenant.
  const missing = await fails(client, "list", { tenant });
  assert.match(missing, /SOLO_ERR_TENANT_NOT_FOUND/);
  // The hint names the tool that mends it, in a model's words.
  assert.match(missing, /^hint: the tenant_create tool makes one$/m);
  assert.match(await ok(client, "tenant_create", { tenant, limits: { maxServices: 5 } }), new RegExp(`created tenant ${tenant}`));
  assert.match(await ok(client, "tenant_list", {}), new RegExp(tenant));
  assert.match(await ok(client, "list", { tenant }), /has no services/);

  // The analyzer refuses the import; the text says where and why.
  const refused = await fails(client, "deploy", { tenant, service: "counter", code: BROKEN });
  assert.match(refused, /SOLO_ERR_DEPLOY_REJECTED/);
  assert.match(refused, /line 1, column 1: no-import/);

  // A misspelt argument is refused by name, with the ones the tool takes.
  const misspelt = await fails(client, "deploy", { tenant, service: "counter", code: V1, limit: { cpuMsPerMessage: 50 } });
  assert.match(misspelt, /"limit"/);
  assert.match(misspelt, /limits/);

  const deployed = await ok(client, "deploy", {
    tenant,
    service: "counter",
    code: V1,
    file: "counter.ts",
    args: { start: 10 },
    limits: { cpuMsPerMessage: 200 },
    supervision: { restart: "transient" },
    tags: ["demo"],
  });
  assert.match(deployed, new RegExp(`deployed ${tenant}/counter version 1`));
  const status = await ok(client, "status", { tenant, service: "counter" });
  assert.match(status, /running, version 1/);
  assert.match(status, /"cpuMsPerMessage":200/);
  assert.match(status, /"restart":"transient"/);
  assert.match(await ok(client, "list", { tenant, tag: "demo" }), /counter \(running, version 1\)/);

  assert.match(await fails(client, "call", { tenant, service: "counter", req: 1 }), /"req".*tenant, service, request, timeoutMs/);
  assert.equal(await ok(client, "call", { tenant, service: "counter", request: { op: "inc" } }), "reply: 11");

  // The log: what the call logged, and a cursor to read on from.
  const log = await ok(client, "logs", { tenant, service: "counter" });
  assert.match(log, /info v1 counted 11/);
  const next = /next: (\S+)/.exec(log)?.[1];
  assert.ok(next && next !== "start", log);
  assert.match(await ok(client, "logs", { tenant, service: "counter", after: next }), /^0 line\(s\)/);
  // A wait for the next line ends with the line the next call logs.
  const waited = ask(client, "logs", { tenant, service: "counter", after: next, waitMs: 30_000 });
  assert.equal(await ok(client, "call", { tenant, service: "counter" }), "reply: 12");
  const fresh = await waited;
  assert.equal(fresh.isError, false, fresh.text);
  assert.match(fresh.text, /^1 line\(s\)/);
  assert.match(fresh.text, /v1 counted 12/);
  assert.doesNotMatch(fresh.text, /counted 11/);

  // A swap keeps the state; a rollback brings the old code back, with the state still kept.
  assert.match(await ok(client, "swap", { tenant, service: "counter", code: V2 }), new RegExp(`swapped ${tenant}/counter to version 2`));
  assert.equal(await ok(client, "call", { tenant, service: "counter" }), "reply: 112");
  assert.match(await ok(client, "history", { tenant, service: "counter" }), /2 version\(s\) .*current: 2/);
  assert.match(await ok(client, "source", { tenant, service: "counter", version: 1 }), /v1 counted/);
  const rolled = await ok(client, "rollback", { tenant, service: "counter" });
  assert.match(rolled, new RegExp(`rolled ${tenant}/counter back: version \\d+ runs now`));
  assert.equal(await ok(client, "call", { tenant, service: "counter" }), "reply: 113");
  assert.match(await ok(client, "logs", { tenant, service: "counter" }), /v2 counted 112[\s\S]*v1 counted 113/);

  // The log of it all, and its chain.
  const events = await ok(client, "events", { tenant });
  for (const type of ["tenant_created", "service_deployment_failed", "service_deployed", "hot_swap_started"])
    assert.match(events, new RegExp(` ${type} `), `${type} in\n${events}`);
  const verified = await ok(client, "verify", {});
  const upTo = Number(/events 1 to (\d+) verified/.exec(verified)?.[1]);
  assert.ok(upTo >= Number(/#(\d+) [^\n]*$/.exec(events)?.[1]), verified);
}
