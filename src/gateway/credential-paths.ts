/**
 * Where the gateway's credentials live in a data directory, apart from credentials.ts (which
 * makes and loads them, with the X.509 library) so that the CLI can find them without loading it.
 */
import { join, resolve } from "node:path";

const TLS_DIR = "tls";

/** Where each credential lives, all under `<dataDir>/tls`. */
export interface CredentialPaths {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly adminCert: string;
  readonly adminKey: string;
  readonly adminToken: string;
}

/** The paths of the credentials in a data directory (nothing is read or made). */
export function credentialPaths(dataDir: string): CredentialPaths {
  const dir = join(resolve(dataDir), TLS_DIR);
  return {
    dir,
    caCert: join(dir, "ca.crt"),
    caKey: join(dir, "ca.key"),
    serverCert: join(dir, "server.crt"),
    serverKey: join(dir, "server.key"),
    adminCert: join(dir, "admin.crt"),
    adminKey: join(dir, "admin.key"),
    adminToken: join(dir, "admin.token"),
  };
}
