/**
 * Tenants' secrets (values go in, names come out): `solo secret put`, `rm` and `ls`.
 */
import { readFileSync } from "node:fs";
import type { Cli } from "../command.ts";
import type { Clients } from "../connection.ts";
import { table } from "../output.ts";

/** `solo secret put <tenant> <name> [value]`: the value from the argument, or stdin. */
export async function put(cli: Cli, c: Clients, tenant: string, name: string, value: string | undefined): Promise<void> {
  const s = (await c.secrets.put({ tenant, name, value: value ?? readFileSync(0, "utf8") })).secret;
  cli.out(s, () => process.stdout.write(`stored ${tenant}/${name}\n`));
}

/** `solo secret rm <tenant> <name>`. */
export async function remove(cli: Cli, c: Clients, tenant: string, name: string): Promise<void> {
  const r = await c.secrets.delete({ tenant, name });
  cli.out(r, () => process.stdout.write(r.deleted ? `deleted ${tenant}/${name}\n` : `no secret ${tenant}/${name}\n`));
}

/** `solo secret ls <tenant>`: names, never values. */
export async function list(cli: Cli, c: Clients, tenant: string): Promise<void> {
  const { secrets } = await c.secrets.list({ tenant });
  cli.out(secrets, () => table([["NAME", "UPDATED", "KEY"], ...secrets.map((s) => [s.name, s.updatedAt, String(s.keyId)])]));
}
