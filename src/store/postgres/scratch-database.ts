/**
 * Throwaway PostgreSQL databases for tests and benchmarks: created on a server given by an admin
 * URL, named `<prefix>_<pid>_<random hex>`, and dropped afterwards.
 * @internal
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { redact } from "./postgres-store.ts";

/** A database created for one test or benchmark, and how to get rid of it. @internal */
export interface ScratchDatabase {
  readonly name: string;
  /** A URL for the new database, with the server's user and password. */
  readonly url: string;
  /** Terminates every other connection to the database and drops it; safe to call twice. */
  drop(): Promise<void>;
}

/** Runs `work` on a fresh connection to the admin URL, then closes it. */
async function withAdmin<T>(adminUrl: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  // A bounded connect, so a firewalled host reports "unreachable" instead of hanging the run.
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000 });
  // A connection dropped by the server emits on the client; the pending query reports it.
  client.on("error", () => undefined);
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Undefined when the server answers a query, otherwise why it cannot be used. @internal */
export async function unreachable(adminUrl: string, envName: string): Promise<string | undefined> {
  try {
    await withAdmin(adminUrl, (c) => c.query("SELECT 1"));
    return undefined;
  } catch (err) {
    return `PostgreSQL is not reachable at ${redact(adminUrl)} (${(err as Error).message}); start it or set ${envName}`;
  }
}

/** Creates a fresh, empty database `<prefix>_<pid>_<random hex>` on the admin URL's server. @internal */
export async function createScratchDatabase(adminUrl: string, prefix: string): Promise<ScratchDatabase> {
  const name = `${prefix}_${process.pid}_${randomBytes(6).toString("hex")}`;
  // The name is made of [a-z0-9_] only, so quoting it is enough.
  await withAdmin(adminUrl, (c) => c.query(`CREATE DATABASE "${name}"`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  let dropped: Promise<void> | undefined;
  return {
    name,
    url: url.toString(),
    drop() {
      dropped ??= withAdmin(adminUrl, async (c) => {
        await c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [name]);
        await c.query(`DROP DATABASE IF EXISTS "${name}"`);
      });
      return dropped;
    },
  };
}
