/**
 * `solo cert issue`: a client certificate for another machine, signed by the data directory's CA.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { issueClientCert } from "../../gateway/credentials.ts";
import { type Cli, inFlags } from "../command.ts";
import { dataDirOf } from "../connection.ts";
import { exitCodeOf, printError } from "../errors.ts";

/** `solo cert issue <name>`: writes `<name>.crt`, `<name>.key` (0600) and `ca.crt` to `--out`. */
export async function issue(cli: Cli, name: string, o: { out: string; days?: number }): Promise<void> {
  try {
    const dataDir = dataDirOf(cli.options.dataDir);
    const c = await issueClientCert(dataDir, { commonName: name, ...(o.days !== undefined ? { days: o.days } : {}) }).catch(
      (err: unknown) => {
        throw inFlags(err, (field) => (field === "commonName" ? "<name>" : field === "days" ? "--days" : undefined));
      },
    );
    const files = { cert: join(o.out, `${name}.crt`), key: join(o.out, `${name}.key`), ca: join(o.out, "ca.crt") };
    writeFileSync(files.cert, c.certPem, { mode: 0o644 });
    writeFileSync(files.key, c.keyPem, { mode: 0o600 });
    writeFileSync(files.ca, c.caPem, { mode: 0o644 });
    cli.out(files, () =>
      process.stdout.write(
        `wrote ${files.cert}, ${files.key} (0600) and ${files.ca}\nuse: solo --url https://<this host>:7443 --cert ${files.cert} --key ${files.key} --ca ${files.ca} --token <token> ...\n`,
      ),
    );
  } catch (err) {
    printError(err, cli.json);
    process.exitCode = exitCodeOf(err);
  }
}
