import { Worker } from "node:worker_threads";
import { SoloError } from "../../lib/errors/errors.ts";
import type {
  ChainHead,
  DeploymentRecord,
  EventFilter,
  LogRow,
  OpResult,
  SecretRow,
  Store,
  StoredEventRow,
  TenantRow,
  TokenRow,
  VaultKeyRow,
  WriteOp,
} from "../store.ts";
import type { SqliteRequest, SqliteResponse } from "./protocol.ts";

type Request = SqliteRequest extends infer R ? (R extends SqliteRequest ? Omit<R, "id"> : never) : never;

interface Pending {
  resolve(value: unknown): void;
  reject(err: SoloError): void;
}

/**
 * Opens the SQLite store at `path` (created if missing) on its own thread. Rejects with a
 * precise error if the file is damaged, written by a newer schema, or cannot be opened.
 * @internal
 */
export async function openSqliteStore(path: string): Promise<Store> {
  const worker = new Worker(new URL("./worker.ts", import.meta.url), { workerData: { path } });
  const opened = await new Promise<SqliteResponse>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  }).catch((err: unknown) => {
    throw new SoloError("SOLO_ERR_STORE_OPEN", `the SQLite store's thread failed to start: ${String(err)}`, { file: path }, { cause: err });
  });
  if (!opened.ok) {
    await worker.terminate();
    throw SoloError.fromData(opened.error);
  }
  return new SqliteStore(path, worker);
}

class SqliteStore implements Store {
  readonly kind = "sqlite";
  readonly location: string;
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private failure: SoloError | undefined;
  private closing: Promise<void> | undefined;

  constructor(path: string, worker: Worker) {
    this.location = path;
    this.worker = worker;
    worker.on("message", (res: SqliteResponse) => {
      const p = this.pending.get(res.id);
      if (!p) return;
      this.pending.delete(res.id);
      if (res.ok) p.resolve(res.value);
      else p.reject(SoloError.fromData(res.error));
    });
    worker.on("error", (err: unknown) => this.fail(err instanceof Error ? err : new Error(String(err))));
    worker.on("exit", (code) => {
      // Whatever still waits is answered, closing or not: nothing hangs on a thread that is gone.
      if (this.pending.size > 0 || !this.closing) this.fail(new Error(`the SQLite store's thread exited with code ${code}`));
    });
  }

  private fail(err: Error): void {
    this.failure ??= new SoloError(
      "SOLO_ERR_STORE_UNAVAILABLE",
      `the SQLite store ${this.location} stopped: ${err.message}`,
      { file: this.location },
      { cause: err },
    );
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }

  private request<T>(req: Request): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing && req.method !== "close") {
      return Promise.reject(new SoloError("SOLO_ERR_STORE_CLOSED", `the SQLite store ${this.location} is closed`));
    }
    const id = ++this.nextId;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ ...req, id });
    });
  }

  commit(ops: readonly WriteOp[]): Promise<OpResult[]> {
    return this.request({ method: "commit", ops });
  }
  head(): Promise<ChainHead> {
    return this.request({ method: "head" });
  }
  queryEvents(filter: EventFilter): Promise<StoredEventRow[]> {
    return this.request({ method: "queryEvents", filter });
  }
  activeDeployments(): Promise<DeploymentRecord[]> {
    return this.request({ method: "activeDeployments" });
  }
  deploymentHistory(tenant: string, service: string): Promise<DeploymentRecord[]> {
    return this.request({ method: "deploymentHistory", tenant, service });
  }
  latestVersions(): Promise<Array<{ tenant: string; service: string; version: number }>> {
    return this.request({ method: "latestVersions" });
  }
  kvGet(tenant: string, service: string, key: string): Promise<string | undefined> {
    return this.request({ method: "kvGet", tenant, service, key });
  }
  kvList(tenant: string, service: string, prefix: string, after: string, limit: number): Promise<Array<[string, string]>> {
    return this.request({ method: "kvList", tenant, service, prefix, after, limit });
  }
  kvUsage(tenant: string, service: string): Promise<{ bytes: number; keys: number }> {
    return this.request({ method: "kvUsage", tenant, service });
  }
  tenants(): Promise<TenantRow[]> {
    return this.request({ method: "tenants" });
  }
  logLines(): Promise<LogRow[]> {
    return this.request({ method: "logLines" });
  }
  tokens(): Promise<TokenRow[]> {
    return this.request({ method: "tokens" });
  }
  vaultKeys(): Promise<VaultKeyRow[]> {
    return this.request({ method: "vaultKeys" });
  }
  secret(tenant: string, name: string): Promise<SecretRow | undefined> {
    return this.request({ method: "secret", tenant, name });
  }
  secrets(tenant: string): Promise<SecretRow[]> {
    return this.request({ method: "secrets", tenant });
  }
  secretsNotUnder(keyId: number, limit: number): Promise<SecretRow[]> {
    return this.request({ method: "secretsNotUnder", keyId, limit });
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      // Requests run in order on the thread, so everything sent before this finishes first.
      const done = this.request<void>({ method: "close" }).catch(() => undefined);
      await done;
      await this.worker.terminate();
    })();
    return this.closing;
  }
}
