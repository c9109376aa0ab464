/**
 * Tenants (admin): `solo tenant create`, `ls`, `get`, `update` and `rm`.
 */
import { type Cli, jsonObject } from "../command.ts";
import type { Clients } from "../connection.ts";
import { jsonReplacer, kib, table } from "../output.ts";

/** `solo tenant create <name>`. */
export async function create(cli: Cli, c: Clients, name: string, o: { limits?: string; reuseName?: boolean }): Promise<void> {
  const limits = jsonObject(o.limits, "--limits");
  const t = (await c.tenants.create({ name, ...(limits ? { limits } : {}), reuseName: o.reuseName === true })).tenant;
  cli.out(t, () => process.stdout.write(`created tenant ${name}${t && t.incarnation > 1 ? ` (incarnation ${t.incarnation})` : ""}\n`));
}

/** `solo tenant ls`. */
export async function list(cli: Cli, c: Clients): Promise<void> {
  const { tenants } = await c.tenants.list({});
  cli.out(tenants, () =>
    table([
      ["TENANT", "MAX SERVICES", "MEMORY", "CREATED"],
      ...tenants.map((t) => [t.name, String(t.limits?.maxServices ?? ""), kib(Number(t.limits?.memoryBytes ?? 0)), t.createdAt]),
    ]),
  );
}

/** `solo tenant get <name>`. */
export async function get(cli: Cli, c: Clients, name: string): Promise<void> {
  const t = (await c.tenants.get({ name })).tenant;
  cli.out(t, () => process.stdout.write(`${JSON.stringify(t, jsonReplacer, 2)}\n`));
}

/** `solo tenant update <name> --limits`: limits left out go back to the defaults. */
export async function update(cli: Cli, c: Clients, name: string, o: { limits: string }): Promise<void> {
  const t = (await c.tenants.update({ name, limits: jsonObject(o.limits, "--limits") ?? {} })).tenant;
  cli.out(t, () => process.stdout.write(`updated tenant ${name}\n`));
}

/** `solo tenant rm <name>`: its services, tokens, secrets and storage go; its events stay. */
export async function remove(cli: Cli, c: Clients, name: string): Promise<void> {
  const d = await c.tenants.delete({ name });
  cli.out(d, () =>
    process.stdout.write(
      `deleted tenant ${name}: ${d.services} services, ${d.tokensRevoked} tokens revoked, ${d.secretsDeleted} secrets\n`,
    ),
  );
}
