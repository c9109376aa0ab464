// Service I/O: the control plane's side of what a service asks of it.

import type { ServiceGrants } from "../../api/grants.ts";
import type { ServiceLimits } from "../../api/limits.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import { failed, type IoKind, type Result, replied } from "../../sandbox/contract.ts";
import { overByteLimit } from "../../sandbox/json.ts";
import type { Mutation, Store } from "../../store/store.ts";
import type { EventLog } from "../log/event-log.ts";
import { CUSTOM_EVENT_NAME, customEventType } from "../log/event-types.ts";
import { type FetchPolicy, guardedFetch } from "../powers/fetch/index.ts";
import type { Vault } from "../vault/vault.ts";

/** The longest storage key, in bytes of UTF-8. */
export const MAX_KEY_BYTES = 512;
const DEFAULT_LIST_LIMIT = 100;
const MAX_LIST_LIMIT = 1000;

/** The service a request comes from, as the control plane knows it. @internal */
export interface IoCaller {
  readonly tenant: string;
  readonly service: string;
  readonly version: number;
  readonly limits: ServiceLimits;
  readonly grants: ServiceGrants;
  readonly causeId: number | null;
}

/**
 * Answers services' requests for durable storage (`solo.storage`) and custom events
 * (`solo.emit`). Requests arrive as text framed by the bootstrap, from code that may be hostile:
 * every field is checked here again. Each answer is a Result: a JSON value or an error.
 * @internal
 */
export class ServiceIo {
  private readonly store: Store;
  private readonly log: EventLog;
  private readonly vault: () => Vault;
  private readonly fetchPolicy: FetchPolicy;
  /** Each service's last write not yet durable: its later reads wait for it (program order). */
  private readonly lastWrite = new Map<string, Promise<unknown>>();

  constructor(store: Store, log: EventLog, vault: () => Vault, fetchPolicy: FetchPolicy) {
    this.store = store;
    this.log = log;
    this.vault = vault;
    this.fetchPolicy = fetchPolicy;
  }

  async handle(caller: IoCaller, kind: IoKind, arg: string): Promise<Result> {
    try {
      switch (kind) {
        case "kv":
          return replied(await this.kv(caller, arg));
        case "emit":
          return replied(await this.emit(caller, arg));
        case "secret":
          return replied(await this.secret(caller, arg));
        case "fetch":
          return replied(await this.fetch(caller, arg));
      }
    } catch (err) {
      return failed(SoloError.from(err).toData());
    }
  }

  // The scheduler checked the name against the grant; checked again here, where the value is.
  private async secret(c: IoCaller, name: string): Promise<string> {
    if (!c.grants.secrets.includes(name)) {
      throw new SoloError(
        "SOLO_ERR_GRANT_MISSING",
        `solo.secrets.get: ${JSON.stringify(name.slice(0, 128))} is not among the service's granted secrets`,
        {
          grant: "secrets",
        },
      );
    }
    return JSON.stringify(await this.vault().get(c.tenant, name, { service: c.service, version: c.version }));
  }

  // The response enters the service as a value: its body counts against the service's message
  // size (and, once inside, its memory), whatever the grant allows.
  private async fetch(c: IoCaller, arg: string): Promise<string> {
    const grant = c.grants.fetch;
    if (!grant) throw new SoloError("SOLO_ERR_GRANT_MISSING", "solo.fetch: the service was not granted fetch", { grant: "fetch" });
    const request = parseJson(arg, "the fetch request");
    const maxResponseBytes = Math.max(1, Math.min(grant.maxResponseBytes, c.limits.messageBytes - 1024));
    const response = await guardedFetch(request, { ...grant, maxResponseBytes }, this.fetchPolicy);
    return JSON.stringify(response);
  }

  // Writes reach the store in the order they were issued (the log's queue is FIFO); a read issued
  // after a write of the same service waits for it, so a service always reads its own writes.
  private write(c: IoCaller, m: Mutation): Promise<{ changed: boolean }> {
    const key = `${c.tenant}/${c.service}`;
    const p = this.log.write([m], []);
    const settled = p.then(
      () => undefined,
      () => undefined,
    );
    this.lastWrite.set(key, settled);
    settled.then(() => {
      if (this.lastWrite.get(key) === settled) this.lastWrite.delete(key);
    });
    return p;
  }

  private async afterWrites(c: IoCaller): Promise<void> {
    await this.lastWrite.get(`${c.tenant}/${c.service}`);
  }

  private async kv(c: IoCaller, arg: string): Promise<string> {
    const [verb, first, rest] = split3(arg);
    switch (verb) {
      case "get": {
        const key = parseKey(first);
        await this.afterWrites(c);
        const value = await this.store.kvGet(c.tenant, c.service, key);
        return value === undefined ? "[]" : `[${value}]`;
      }
      case "put": {
        const key = parseKey(first);
        if (overByteLimit(rest, c.limits.messageBytes)) {
          throw new SoloError(
            "SOLO_ERR_VALUE_TOO_LARGE",
            `solo.storage.put: the value is over the message limit of ${c.limits.messageBytes} bytes`,
            {
              limit: c.limits.messageBytes,
            },
          );
        }
        parseJson(rest, "the stored value");
        await this.write(c, {
          t: "kv.put",
          tenant: c.tenant,
          service: c.service,
          key,
          value: rest,
          maxBytes: c.limits.storageBytes,
          maxKeys: c.limits.storageKeys,
        });
        return "null";
      }
      case "delete": {
        const key = parseKey(first);
        const { changed } = await this.write(c, { t: "kv.delete", tenant: c.tenant, service: c.service, key });
        return changed ? "true" : "false";
      }
      case "list": {
        const o = parseJson(first, "the list options") as { prefix?: unknown; after?: unknown; limit?: unknown };
        const prefix = o.prefix ?? "";
        if (typeof prefix !== "string" || overByteLimit(prefix, MAX_KEY_BYTES) || hasNul(prefix)) {
          throw keyError(`solo.storage.list: the prefix must be a string of at most ${MAX_KEY_BYTES} bytes`);
        }
        const after = o.after ?? "";
        if (typeof after !== "string" || overByteLimit(after, MAX_KEY_BYTES) || hasNul(after)) {
          throw keyError(`solo.storage.list: after must be a key (a string of at most ${MAX_KEY_BYTES} bytes)`);
        }
        const limit = o.limit ?? DEFAULT_LIST_LIMIT;
        if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
          throw new SoloError("SOLO_ERR_REQUEST_INVALID", `solo.storage.list: limit must be an integer from 1 to ${MAX_LIST_LIMIT}`, {
            field: "limit",
          });
        }
        await this.afterWrites(c);
        const rows = await this.store.kvList(c.tenant, c.service, prefix, after, limit);
        // Values are stored as JSON text already, so the answer is assembled without re-encoding.
        return `[${rows.map(([k, v]) => `{"key":${JSON.stringify(k)},"value":${v}}`).join(",")}]`;
      }
      default:
        throw new SoloError("SOLO_ERR_REQUEST_INVALID", "solo.storage: unknown operation");
    }
  }

  private async emit(c: IoCaller, arg: string): Promise<string> {
    const nl = arg.indexOf("\n");
    const name = parseJson(nl < 0 ? arg : arg.slice(0, nl), "the event name");
    if (typeof name !== "string" || !CUSTOM_EVENT_NAME.test(name)) {
      throw new SoloError(
        "SOLO_ERR_EVENT_INVALID",
        `solo.emit: ${JSON.stringify(String(name).slice(0, 80))} is not a valid event name: 1-64 of a-z, 0-9, '_', '-', '.', starting with a letter and ending with a letter or digit`,
        { field: "name" },
      );
    }
    const payload = parseJson(nl < 0 ? "null" : arg.slice(nl + 1), "the event payload");
    const event = await this.log.append({
      tenant: c.tenant,
      type: customEventType(c.service, name),
      subject: c.service,
      payload,
      causationId: c.causeId,
    });
    return String(event.id);
  }
}

function split3(arg: string): [string, string, string] {
  const a = arg.indexOf("\n");
  if (a < 0) return [arg, "", ""];
  const b = arg.indexOf("\n", a + 1);
  return b < 0 ? [arg.slice(0, a), arg.slice(a + 1), ""] : [arg.slice(0, a), arg.slice(a + 1, b), arg.slice(b + 1)];
}

function keyError(message: string): SoloError {
  return new SoloError("SOLO_ERR_STORAGE_KEY_INVALID", message, { field: "key", limit: MAX_KEY_BYTES });
}

// PostgreSQL text cannot hold U+0000, so neither can a key (on any backend, so both behave alike).
function hasNul(s: string): boolean {
  return s.includes("\u0000");
}

function parseKey(json: string): string {
  const key = parseJson(json, "the key");
  if (typeof key !== "string" || key === "") throw keyError("solo.storage: the key must be a non-empty string");
  if (hasNul(key)) throw keyError("solo.storage: the key must not contain U+0000");
  if (overByteLimit(key, MAX_KEY_BYTES)) throw keyError(`solo.storage: the key is over ${MAX_KEY_BYTES} bytes`);
  return key;
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new SoloError("SOLO_ERR_VALUE_NOT_JSON", `${what} is not valid JSON`);
  }
}
