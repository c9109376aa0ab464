import type { ErrorData } from "../../lib/errors/errors.ts";
import type { EventFilter, WriteOp } from "../store.ts";

/** A request to the SQLite store's thread. @internal */
export type SqliteRequest = { readonly id: number } & (
  | { readonly method: "commit"; readonly ops: readonly WriteOp[] }
  | { readonly method: "head" }
  | { readonly method: "queryEvents"; readonly filter: EventFilter }
  | { readonly method: "activeDeployments" }
  | { readonly method: "deploymentHistory"; readonly tenant: string; readonly service: string }
  | { readonly method: "latestVersions" }
  | { readonly method: "kvGet"; readonly tenant: string; readonly service: string; readonly key: string }
  | {
      readonly method: "kvList";
      readonly tenant: string;
      readonly service: string;
      readonly prefix: string;
      readonly after: string;
      readonly limit: number;
    }
  | { readonly method: "kvUsage"; readonly tenant: string; readonly service: string }
  | { readonly method: "tenants" }
  | { readonly method: "logLines" }
  | { readonly method: "tokens" }
  | { readonly method: "vaultKeys" }
  | { readonly method: "secret"; readonly tenant: string; readonly name: string }
  | { readonly method: "secrets"; readonly tenant: string }
  | { readonly method: "secretsNotUnder"; readonly keyId: number; readonly limit: number }
  | { readonly method: "close" }
);

/** The thread's answer to request `id` (id 0 answers the open). @internal */
export type SqliteResponse =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: ErrorData };
