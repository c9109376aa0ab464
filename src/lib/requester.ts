// Who sent a request, as the edge saw it, and the request an operation serves: what audit records
// name and what the edge keys its per-client budgets by.

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

/** Who a requester is: its certificate when it has one (wherever it connects from), else its address. */
export function requesterKey(r: Requester | undefined): string {
  if (!r) return "";
  return r.certificate !== undefined ? `cert:${r.certificate}` : `addr:${r.address ?? ""}`;
}
