import type { EventInput } from "../log/event-log.ts";

/** Who made a request, as the edge saw it (the gateway fills it in; an embedder may). */
export interface Requester {
  /** The client's network address. */
  readonly address?: string;
  /** The SHA-256 fingerprint of its client certificate (hex, no colons). */
  readonly certificate?: string;
  /** Its certificate's subject common name. */
  readonly name?: string;
}

/** The request an operation serves: who sent it and its id (for audit records). */
export interface Via {
  readonly requester?: Requester;
  /** The request id: the correlation id of the events it causes. */
  readonly correlationId?: string;
}

/** One denial to record. */
export interface Denial {
  /** The chain it is filed in: the requester's own tenant (a valid scoped token's), else none. */
  readonly tenant: string | null;
  readonly subject: string | null;
  readonly operation: string;
  readonly targetTenant: string | null;
  readonly reason: string;
  readonly message: string;
  readonly tokenId: string | null;
  readonly required?: string;
  readonly via?: Via | undefined;
  /** Tells apart repeats of a denial without a valid token: a digest of what was presented (not recorded). */
  readonly credential?: string;
}

/** How long repeats of one denial are counted before their record is written. */
export const DENIAL_WINDOW_MS = 10_000;
/** Distinct denials one requester may have counted at once; beyond, they are counted together. */
export const DENIAL_KEYS_PER_REQUESTER = 16;
/** Distinct denials counted at once in all; beyond, they are counted together. */
export const DENIAL_KEYS = 4096;
const SAMPLE_OPERATIONS = 16;

interface Window {
  readonly first: Denial;
  readonly requester: string;
  count: number;
  firstAt: number;
  lastAt: number;
  last: Denial;
  /** Operations counted (for the requester's catch-all window). */
  readonly operations: Map<string, number>;
  timer: NodeJS.Timeout;
}

/**
 * Records denials without becoming a weapon. The first denial of a kind (requester, token,
 * reason, operation, target) is written at once; repeats within {@link DENIAL_WINDOW_MS} are
 * counted and written as one record with the count, the first and last time, when the window
 * ends. A requester that varies what it asks for is folded into one window per reason once it
 * has {@link DENIAL_KEYS_PER_REQUESTER} open, so a flood costs a handful of writes whatever it
 * sends.
 */
export class DenialLedger {
  private readonly append: (e: EventInput) => Promise<unknown>;
  private readonly now: () => number;
  private readonly windows = new Map<string, Window>();
  private readonly perRequester = new Map<string, number>();
  /** Denials seen since the kernel opened (all, recorded or counted). */
  seen = 0;
  /** Durable records written for them. */
  written = 0;

  private readonly windowMs: number;

  constructor(append: (e: EventInput) => Promise<unknown>, now: () => number, windowMs = DENIAL_WINDOW_MS) {
    this.append = append;
    this.now = now;
    this.windowMs = windowMs;
  }

  /** Kinds of denial being counted now. */
  get counting(): number {
    return this.windows.size;
  }

  /** Records `d`: at once if it is the first of its kind in the window, else counted. */
  record(d: Denial): Promise<void> {
    this.seen++;
    const requester = requesterKey(d.via?.requester);
    const exact = [
      d.tenant ?? "",
      requester,
      d.credential ?? "",
      d.tokenId ?? "",
      d.reason,
      d.operation,
      d.targetTenant ?? "",
      d.subject ?? "",
      d.message,
    ].join("\u0000");
    const at = this.now();
    let key = exact;
    let w = this.windows.get(key);
    // An embedder's own callers (no requester) are told apart only up to the global bound.
    const crowded = d.via?.requester !== undefined && (this.perRequester.get(requester) ?? 0) >= DENIAL_KEYS_PER_REQUESTER;
    if (!w && (crowded || this.windows.size >= DENIAL_KEYS)) {
      key = [d.tenant ?? "", requester, d.reason, "*"].join("\u0000");
      w = this.windows.get(key);
    }
    if (w) {
      w.count++;
      w.lastAt = at;
      w.last = d;
      if (w.operations.size < SAMPLE_OPERATIONS || w.operations.has(d.operation))
        w.operations.set(d.operation, (w.operations.get(d.operation) ?? 0) + 1);
      return Promise.resolve();
    }
    const opened: Window = {
      first: d,
      requester,
      count: 0,
      firstAt: at,
      lastAt: at,
      last: d,
      operations: new Map(),
      timer: setTimeout(() => this.close(key), this.windowMs),
    };
    opened.timer.unref();
    this.windows.set(key, opened);
    this.perRequester.set(requester, (this.perRequester.get(requester) ?? 0) + 1);
    const folded = key !== exact;
    return this.write(
      {
        tenant: d.tenant,
        type: "capability_denied",
        subject: folded ? null : d.subject,
        payload: { ...payloadOf(d), ...(folded ? { operation: "*", operations: { [d.operation]: 1 } } : {}) },
        ...(d.via?.correlationId ? { correlationId: d.via.correlationId } : {}),
      },
      key,
    );
  }

  /** Writes what every window has counted (at close). */
  async flush(): Promise<void> {
    const keys = [...this.windows.keys()];
    await Promise.all(keys.map((k) => this.close(k, true)));
  }

  /** Ends a window: its count, if any, becomes one record; a window that counted more goes on. */
  private close(key: string, final = false): Promise<void> {
    const w = this.windows.get(key);
    if (!w) return Promise.resolve();
    clearTimeout(w.timer);
    const count = w.count;
    if (count === 0 || final) {
      this.drop(key);
    } else {
      w.count = 0;
      w.timer = setTimeout(() => this.close(key), this.windowMs);
      w.timer.unref();
    }
    if (count === 0) return Promise.resolve();
    const folded = key.endsWith("\u0000*");
    const d = w.last;
    const counted = {
      tenant: d.tenant,
      type: "capability_denied" as const,
      subject: folded ? null : d.subject,
      payload: {
        ...payloadOf(d),
        ...(folded ? { operation: "*", operations: Object.fromEntries(w.operations) } : {}),
        count,
        firstAt: new Date(w.firstAt).toISOString(),
        lastAt: new Date(w.lastAt).toISOString(),
      },
      correlationId: null,
    };
    w.operations.clear();
    w.firstAt = w.lastAt;
    return this.write(counted);
  }

  private drop(key: string): void {
    const w = this.windows.get(key);
    if (!w) return;
    clearTimeout(w.timer);
    this.windows.delete(key);
    const left = (this.perRequester.get(w.requester) ?? 1) - 1;
    if (left <= 0) this.perRequester.delete(w.requester);
    else this.perRequester.set(w.requester, left);
  }

  private write(e: EventInput, key?: string): Promise<void> {
    this.written++;
    return this.append(e).then(
      () => undefined,
      (failure: unknown) => {
        // Not recorded: the next one of its kind is written at once rather than counted.
        if (key !== undefined) this.drop(key);
        console.error("solo: recording capability_denied failed:", failure);
      },
    );
  }
}

function payloadOf(d: Denial): Record<string, unknown> {
  return {
    operation: d.operation,
    targetTenant: d.targetTenant,
    reason: d.reason,
    message: d.message.slice(0, 500),
    tokenId: d.tokenId,
    ...(d.required !== undefined ? { required: d.required } : {}),
    ...(d.via?.requester ? { requester: { ...d.via.requester } } : {}),
  };
}

function requesterKey(r: Requester | undefined): string {
  return r ? `${r.address ?? ""}|${r.certificate ?? ""}` : "";
}
