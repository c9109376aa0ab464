/**
 * Capability tokens: `solo token grant`, `attenuate`, `ls`, `revoke` and `whoami`.
 */
import type { TokenInfo } from "../../gen/solo/v1/solo_pb.js";
import type { Cli } from "../command.ts";
import type { Clients } from "../connection.ts";
import { colours, dim, table, UsageError } from "../output.ts";

/** `solo token grant`: the token alone on stdout, shown once. */
export async function grant(
  cli: Cli,
  c: Clients,
  o: { tenant?: string; unscoped?: boolean; perm: string[]; ttl?: number; label?: string },
): Promise<void> {
  if (!o.unscoped && !o.tenant) throw new UsageError("give --tenant, or --unscoped for an admin token");
  const g = await c.tokens.grant({
    tenant: o.tenant ?? "",
    unscoped: o.unscoped === true,
    permissions: o.perm,
    ...(o.ttl ? { ttlMs: BigInt(o.ttl) } : {}),
    ...(o.label ? { label: o.label } : {}),
  });
  // Only the token on stdout, so `TOKEN=$(solo token grant ...)` captures it; the note is for people.
  cli.out({ token: g.token, info: g.info }, () => {
    process.stdout.write(`${g.token}\n`);
    process.stderr.write(`${dim(`id ${g.info?.id}; shown once: keep it safe`, colours(process.stderr))}\n`);
  });
}

/** `solo token attenuate`: a token derived from the one in use, with fewer permissions. */
export async function attenuate(cli: Cli, c: Clients, o: { perm: string[]; ttl?: number; label?: string }): Promise<void> {
  const g = await c.tokens.attenuate({
    permissions: o.perm,
    ...(o.ttl ? { ttlMs: BigInt(o.ttl) } : {}),
    ...(o.label ? { label: o.label } : {}),
  });
  cli.out({ token: g.token, info: g.info }, () => process.stdout.write(`${g.token}\n`));
}

/** `solo token ls`. */
export async function list(cli: Cli, c: Clients, o: { tenant?: string }): Promise<void> {
  const { tokens } = await c.tokens.list({ tenant: o.tenant ?? "" });
  cli.out(tokens, () => tokenTable(tokens));
}

/** `solo token revoke <id>`: it and every token derived from it. */
export async function revoke(cli: Cli, c: Clients, id: string): Promise<void> {
  const r = await c.tokens.revoke({ id });
  cli.out(r, () => process.stdout.write(`revoked ${r.revoked.join(", ")}\n`));
}

/** `solo token whoami`. */
export async function whoami(cli: Cli, c: Clients): Promise<void> {
  const { info } = await c.tokens.whoAmI({});
  cli.out(info, () => tokenTable(info ? [info] : []));
}

function tokenTable(tokens: readonly TokenInfo[]): void {
  table([
    ["ID", "TENANT", "STATE", "EXPIRES", "PERMISSIONS", "LABEL"],
    ...tokens.map((t) => [t.id, t.tenant || "*", t.state, t.expiresAt || "never", t.permissions.join(" "), t.label]),
  ]);
}
