import { readFileSync } from "node:fs";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { ReadResourceResult } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";

/** The programming-model guide's resource URI. */
export const GUIDE_URI = "solo://guide/programming-model";
const GUIDE_FILE = new URL("../../docs/programming-model.md", import.meta.url);

/** The programming-model guide, read once: docs/programming-model.md, the same text users read. */
let guide: string | undefined;
function guideText(): string {
  guide ??= readFileSync(GUIDE_FILE, "utf8");
  return guide;
}

// What a model must know to write a service that deploys on the first try: the contract, the
// `solo` object and its grants, what the sandbox lacks, and how to read the analyzer's findings.
const CONTRACT = `You are writing a Solo service: one ES module (JavaScript or TypeScript; types are stripped, never checked) whose default export is an object literal of handlers. Solo runs it like an Erlang/OTP gen_server in a QuickJS sandbox: one message at a time, in mailbox order.

The handlers (at least one of handleCall, handleCast, handleInfo):
- init(args, ctx) -> the initial state (any JSON value). Runs at deploy and after every restart, with the deploy's args.
- handleCall(request, state, ctx) -> { reply, state }, or { error: { code, message, details? }, state } to answer with an error of the service's own (code like "not_found"; the service keeps running and its state). The caller waits for the answer (default timeout 5 s); reply undefined (or none) answers no value. Or return { noreply: true, state } and answer later from any handler with solo.reply(ctx.replyTo, value) or solo.replyError(ctx.replyTo, { code, message }) (once per call; within the caller's timeout; catch SOLO_ERR_REPLY_TOO_LATE for callers that gave up).
- handleCast(message, state, ctx) -> { state }. Fire and forget.
- Any of the three may add stop: true to end the service normally after answering (terminate("normal") runs; a permanent service is restarted, a transient or temporary one stays down).
- handleInfo(message, state, ctx) -> { state }. Timer messages from solo.sendAfter.
- codeChange(fromVersion, state, ctx) -> the new state, synchronously. Runs on a hot swap instead of init.
- terminate(reason, state, ctx). Runs when the service is killed.
Handlers may be async. ctx is { tenant, service, version, from }. Requests, replies, messages, args and state are JSON data only (no undefined in arrays, Map, Date, class instances, BigInt, NaN).

The solo object (each member is a power the deployment must grant; every deployment has storage, emit, timers and log unless it switches them off, e.g. grants: { storage: false }; other grants add to these; solo.grants shows the service its own):
- await solo.storage.get(key) / put(key, value) / delete(key) / list(prefix?, { after?, limit? }): durable key-value storage of this service. A put resolves once durable. State in memory is lost on a crash or restart; what must survive goes to storage, and init reads it back.
- solo.sendAfter(ms, message) -> timer id, delivered to handleInfo; solo.cancelTimer(id).
- await solo.emit(name, payload): appends the event svc.<service>.<name> to the tamper-evident log.
- solo.log(...), solo.warn(...), solo.error(...) (also console.*): log lines. They never throw; without the log grant the lines are dropped and counted.
- await solo.call(service, request, { timeoutMs? }) and solo.cast(service, message): other services of the same tenant; grants: { call: ["that-service"] } (or a pattern: "billing-*", "*").
- await solo.secrets.get(name): a tenant secret; grants: { secrets: ["NAME"] }.
- await solo.fetch(url, { method?, headers?, body? }) -> { status, headers, body, ... }: HTTPS to allow-listed hosts; grants: { fetch: { hosts: ["api.example.com"] } }.
Errors from solo.* are Errors named SoloError with code, reason and details. Using a power that was not granted throws SOLO_ERR_GRANT_MISSING.

The sandbox has the JavaScript built-ins and these web APIs: URL, URLSearchParams, TextEncoder/TextDecoder (UTF-8), atob/btoa, structuredClone, crypto.getRandomValues, crypto.randomUUID, and crypto.subtle.digest (SHA-1/256/384/512) with HMAC importKey("raw")/sign/verify (to sign webhooks); each call takes at most limits.messageBytes of input, and their work counts against the message's CPU budget. It has no process, require, import (a service is one self-contained module), Buffer (use Uint8Array), file system, fetch or network except solo.fetch, eval or Function constructor, setTimeout/setInterval (use solo.sendAfter), performance, Intl, WebAssembly or SharedArrayBuffer. Date.now() has millisecond resolution. Each message has a CPU budget (100 ms of CPU time by default) and the service a memory limit (32 MiB by default, every byte it holds counted), within its tenant's memory (64 MiB by default, shared by all its services); a breach crashes the service, and its supervisor restarts it (init runs again). One built-in call over a huge input (a sort, a search) that runs past 10 times the budget (at least 1 s) makes the kernel replace the whole scheduler thread and puts the tenant in a cooldown: keep inputs bounded.

A throw in a handler answers the failing call with SOLO_ERR_HANDLER_THREW and restarts the service, losing its state: for a bad request, answer with an error instead, { error: { code: "invalid_argument", message: "..." }, state }. The caller then gets SOLO_ERR_APPLICATION_ERROR with details.answer = { code, message, details }; a calling service's solo.call rejects with it (catch it).

Deploy with the deploy tool (tenant, service, code, args?, grants?, limits?, supervision?, tags?) into a tenant that exists (tenant_create makes one; whoami tells the token's). If the analyzer refuses the code, the result is an error whose findings give rule, line, column, message and hint for each problem: fix each one and deploy again. To change a running service without losing its state, use swap with new code (codeChange adapts the old state; swap may also change its grants); read what runs with the source tool, what it logged with the logs tool.

Example:
export default {
  async init(args) { return { count: (await solo.storage.get("count")) ?? args?.start ?? 0 } },
  async handleCall(req, state) {
    if (req?.op !== "inc") return { error: { code: "invalid_argument", message: "expected { op: 'inc' }" }, state };
    const count = state.count + 1;
    await solo.storage.put("count", count);
    return { reply: count, state: { count } };
  },
  codeChange(fromVersion, state) { return state },
};`;

/** The guide as resources/read answers it. */
export async function readGuide(uri: URL): Promise<ReadResourceResult> {
  return { contents: [{ uri: uri.href, mimeType: "text/markdown", text: guideText() }] };
}

/** The programming-model guide as a resource, and the "write a Solo service" prompt. */
export function registerGuide(server: McpServer): void {
  server.registerResource(
    "programming-model",
    GUIDE_URI,
    {
      description: "How to write a Solo service: handlers, the solo object, grants, the analyzer's rules, hot swap, supervision, limits.",
      mimeType: "text/markdown",
    },
    readGuide,
  );

  server.registerPrompt(
    "write_service",
    {
      title: "Write a Solo service",
      description:
        "Teaches the model Solo's handler contract and the solo host object, then asks it to write and deploy a service for a task.",
      argsSchema: {
        task: z.string().min(1).max(4000).describe("what the service should do"),
        tenant: z.string().max(63).optional().describe("the tenant to deploy into"),
        service: z.string().max(63).optional().describe("the service's name"),
      },
    },
    ({ task, tenant, service }) => {
      const where = [tenant ? `tenant ${tenant}` : "", service ? `as service ${service}` : ""].filter(Boolean).join(", ");
      return {
        description: "Write and deploy a Solo service",
        messages: [
          { role: "user", content: { type: "text", text: CONTRACT } },
          { role: "user", content: { type: "resource", resource: { uri: GUIDE_URI, mimeType: "text/markdown", text: guideText() } } },
          {
            role: "user",
            content: {
              type: "text",
              text: `Write a Solo service that does this:\n\n${task}\n\nDeploy it with the deploy tool${where ? ` (${where})` : ""}, granting only the powers it uses. If the analyzer returns findings, fix them and deploy again. Then call it to show that it works.`,
            },
          },
        ],
      };
    },
  );
}
