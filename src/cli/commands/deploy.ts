/**
 * A service's code and its versions: `solo deploy`, `swap`, `rollback`, `history` and `source`.
 */
import { basename } from "node:path";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { FILE_PATTERN } from "../../lib/names.ts";
import { type Cli, jsonObject, parseJson, readCode, ref } from "../command.ts";
import type { Clients } from "../connection.ts";
import { colours, green, printFinding, table } from "../output.ts";

/** `solo deploy <tenant/service> <file>`: the analyzer's findings are printed under the new version. */
export async function deploy(
  cli: Cli,
  c: Clients,
  target: string,
  file: string,
  o: { args?: string; limits?: string; grants?: string; supervision?: string; tag: string[] },
): Promise<void> {
  const r = ref(target);
  cli.codeFile = file;
  const code = readCode(file);
  const limits = jsonObject(o.limits, "--limits");
  const grants = jsonObject(o.grants, "--grants");
  const supervision = jsonObject(o.supervision, "--supervision");
  const d = await c.kernel.deploy({
    ref: r,
    code,
    ...(o.args !== undefined ? { args: fromJson(ValueSchema, parseJson(o.args, "--args")) } : {}),
    ...(limits ? { limits } : {}),
    ...(grants ? { grants } : {}),
    ...(supervision ? { supervision } : {}),
    tags: o.tag,
    file: deployedName(file),
  });
  const dep = d.deployment;
  cli.out(dep, () => {
    process.stdout.write(`${green("deployed", colours())} ${target} version ${dep?.version}\n`);
    for (const f of dep?.findings ?? []) printFinding(f, file);
  });
}

/** `solo swap <tenant/service> <file>`: a hot swap, rolled back if it crashes within `--window`. */
export async function swap(cli: Cli, c: Clients, target: string, file: string, o: { window?: number; grants?: string }): Promise<void> {
  cli.codeFile = file;
  const grants = jsonObject(o.grants, "--grants");
  const d = (
    await c.kernel.swap({
      ref: ref(target),
      code: readCode(file),
      ...(o.window ? { rollbackWindowMs: o.window } : {}),
      ...(grants ? { grants } : {}),
      file: deployedName(file),
    })
  ).deployment;
  cli.out(d, () => {
    process.stdout.write(`${green("swapped", colours())} ${target} to version ${d?.version}\n`);
    for (const f of d?.findings ?? []) printFinding(f, file);
  });
}

/** `solo rollback <tenant/service> [version]`. */
export async function rollback(cli: Cli, c: Clients, target: string, version: number | undefined): Promise<void> {
  const d = (await c.kernel.rollback({ ref: ref(target), ...(version ? { version } : {}) })).deployment;
  cli.out(d, () => process.stdout.write(`rolled ${target} back to version ${d?.version}\n`));
}

/** `solo history <tenant/service>`: every version that ran, `*` on the current one. */
export async function history(cli: Cli, c: Clients, target: string): Promise<void> {
  const { versions } = await c.kernel.history({ ref: ref(target) });
  cli.out(versions, () =>
    table([
      ["", "VERSION", "DEPLOYED", "BYTES", "SHA-256"],
      ...versions.map((v) => [v.current ? "*" : "", String(v.version), v.deployedAt, String(v.codeBytes), v.sha256.slice(0, 16)]),
    ]),
  );
}

/** `solo source <tenant/service> [version]`: the code exactly as deployed. */
export async function source(cli: Cli, c: Clients, target: string, version: number | undefined): Promise<void> {
  const s = await c.kernel.source({ ref: ref(target), ...(version ? { version } : {}) });
  cli.out(s, () => process.stdout.write(s.code.endsWith("\n") ? s.code : `${s.code}\n`));
}

/** The name the kernel gives the code in errors and crashes: the file's own name ("" for stdin, or a name it would refuse). */
function deployedName(file: string): string {
  if (file === "-") return "";
  const name = basename(file);
  return FILE_PATTERN.test(name) ? name : "";
}
