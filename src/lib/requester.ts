// The key the edge budgets a client by and denials are counted under, from who sent a request as the
// edge saw it (a `Requester`, src/api/tokens.ts, of which it reads only the address and certificate).

/**
 * Who a requester is: its certificate when it has one (wherever it connects from), else the valid
 * credential it presented on the web listener (`credential`, a digest), else its address.
 */
export function requesterKey(
  r: { readonly address?: string; readonly certificate?: string; readonly credential?: string } | undefined,
): string {
  if (!r) return "";
  if (r.certificate !== undefined) return `cert:${r.certificate}`;
  return r.credential !== undefined ? `cred:${r.credential}` : `addr:${r.address ?? ""}`;
}
