/**
 * The SQLite store's thread: owns the one connection and runs every request in arrival order.
 * @internal
 */
import { parentPort, workerData } from "node:worker_threads";
import { SoloError } from "../../lib/errors/errors.ts";
import { SqliteEngine } from "./engine.ts";
import type { SqliteRequest, SqliteResponse } from "./protocol.ts";

const port = parentPort;
if (!port) throw new Error("the SQLite store's thread must run as a worker");

let engine: SqliteEngine | undefined;
try {
  engine = new SqliteEngine((workerData as { path: string }).path);
  port.postMessage({ id: 0, ok: true, value: engine.getHead() } satisfies SqliteResponse);
} catch (err) {
  port.postMessage({ id: 0, ok: false, error: SoloError.from(err).toData() } satisfies SqliteResponse);
}

function run(e: SqliteEngine, req: SqliteRequest): unknown {
  switch (req.method) {
    case "commit":
      return e.commit(req.ops);
    case "head":
      return e.getHead();
    case "queryEvents":
      return e.queryEvents(req.filter);
    case "activeDeployments":
      return e.activeDeployments();
    case "deploymentHistory":
      return e.deploymentHistory(req.tenant, req.service);
    case "latestVersions":
      return e.latestVersions();
    case "kvGet":
      return e.kvGet(req.tenant, req.service, req.key);
    case "kvList":
      return e.kvList(req.tenant, req.service, req.prefix, req.after, req.limit);
    case "kvUsage":
      return e.usage(req.tenant, req.service);
    case "tenants":
      return e.tenants();
    case "logLines":
      return e.logLines();
    case "tokens":
      return e.tokens();
    case "vaultKeys":
      return e.vaultKeys();
    case "secret":
      return e.secret(req.tenant, req.name);
    case "secrets":
      return e.secrets(req.tenant);
    case "secretsNotUnder":
      return e.secretsNotUnder(req.keyId, req.limit);
    case "close":
      e.close();
      return undefined;
  }
}

port.on("message", (req: SqliteRequest) => {
  if (!engine) return;
  try {
    const value = run(engine, req);
    port.postMessage({ id: req.id, ok: true, value } satisfies SqliteResponse);
    if (req.method === "close") port.close();
  } catch (err) {
    port.postMessage({ id: req.id, ok: false, error: SoloError.from(err).toData() } satisfies SqliteResponse);
  }
});
