// The key the edge budgets a client by and denials are counted under, from who sent a request as the
// edge saw it (a `Requester`, src/api/tokens.ts, of which it reads only the address and certificate).

/** Who a requester is: its certificate when it has one (wherever it connects from), else its address. */
export function requesterKey(r: { readonly address?: string; readonly certificate?: string } | undefined): string {
  if (!r) return "";
  return r.certificate !== undefined ? `cert:${r.certificate}` : `addr:${r.address ?? ""}`;
}
