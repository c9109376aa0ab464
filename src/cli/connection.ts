import { readFileSync } from "node:fs";
import { type Clients, clientsOver, gatewayTransport } from "../gateway/client.ts";
import { credentialPaths } from "../gateway/credential-paths.ts";
import { SURFACE_HEADER } from "../lib/errors/transport.ts";
import { UsageError } from "./output.ts";

/** How the CLI reaches a kernel: flags, else environment, else the local data directory. */
export interface ConnectionOptions {
  readonly url?: string;
  readonly token?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly ca?: string;
  readonly dataDir?: string;
}

export type { Clients } from "../gateway/client.ts";

export const DEFAULT_URL = "https://127.0.0.1:7443";

/** The data directory a command means: `--data-dir`, else `SOLO_DATA_DIR`, else `./.solo`. */
export function dataDirOf(given: string | undefined): string {
  return given ?? process.env.SOLO_DATA_DIR ?? "./.solo";
}

/**
 * Connects as the flags and environment say: `--url`/`SOLO_URL`, `--token`/`SOLO_TOKEN`, and the
 * client certificate `--cert`/`--key` with the gateway's CA `--ca` (`SOLO_CERT`, `SOLO_KEY`,
 * `SOLO_CA`). What is not given is taken from the data directory (`--data-dir`, `SOLO_DATA_DIR`,
 * default `./.solo`), where `solo start` keeps the admin certificate and token: so on the
 * kernel's own machine every command works with no flags at all. `surface` is who reads the
 * kernel's hints: a person at the CLI, or a model through `solo mcp`.
 */
export function connect(o: ConnectionOptions, surface: "cli" | "mcp" = "cli"): Clients {
  const env = process.env;
  const paths = credentialPaths(dataDirOf(o.dataDir));
  const url = o.url ?? env.SOLO_URL ?? DEFAULT_URL;
  const read = (flag: string, given: string | undefined, fallback: string): string => {
    const path = given ?? fallback;
    try {
      return readFileSync(path, "utf8");
    } catch (err) {
      throw new UsageError(
        `cannot read ${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        given === undefined
          ? `run this on the kernel's machine after 'solo start', or give --url, --token, --cert, --key and --ca (solo cert issue makes a certificate)`
          : undefined,
      );
    }
  };
  const token = (o.token ?? env.SOLO_TOKEN ?? read("the token file", undefined, paths.adminToken)).trim();
  const transport = gatewayTransport({
    url,
    cert: read("--cert", o.cert ?? env.SOLO_CERT, paths.adminCert),
    key: read("--key", o.key ?? env.SOLO_KEY, paths.adminKey),
    ca: read("--ca", o.ca ?? env.SOLO_CA, paths.caCert),
    token,
    // The kernel's hints name CLI commands and flags for this client (tools, for `solo mcp`'s).
    headers: { [SURFACE_HEADER]: surface },
  });
  return clientsOver(transport, url);
}
