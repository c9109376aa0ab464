/**
 * PostgreSQL helpers for the store's tests: a throwaway database per test, and the policy for a
 * machine without PostgreSQL (skip with a reason locally, fail in CI).
 * @internal
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { redact } from "./postgres/postgres-store.ts";

/** The server the tests create their databases on. @internal */
export const TEST_POSTGRES_URL = process.env.SOLO_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** A database created for one test, and how to get rid of it. @internal */
export interface TestDatabase {
  /** A URL for the new database, with the server's user and password. */
  readonly url: string;
  /** Terminates every other connection to the database and drops it; safe to call twice. */
  drop(): Promise<void>;
}

/** Runs `work` on a fresh connection to the server's admin database, then closes it. */
async function withAdmin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  // A bounded connect, so a firewalled host reports "unreachable" instead of hanging the run.
  const client = new pg.Client({ connectionString: TEST_POSTGRES_URL, connectionTimeoutMillis: 5000 });
  // A connection dropped by the server emits on the client; the pending query reports it.
  client.on("error", () => undefined);
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Creates a fresh, empty database `solo_test_<pid>_<random hex>` on the test server. @internal */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `solo_test_${process.pid}_${randomBytes(6).toString("hex")}`;
  // The name is made of [a-z0-9_] only, so quoting it is enough.
  await withAdmin((c) => c.query(`CREATE DATABASE "${name}"`));
  const url = new URL(TEST_POSTGRES_URL);
  url.pathname = `/${name}`;
  let dropped: Promise<void> | undefined;
  return {
    url: url.toString(),
    drop() {
      dropped ??= withAdmin(async (c) => {
        await c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [name]);
        await c.query(`DROP DATABASE IF EXISTS "${name}"`);
      });
      return dropped;
    },
  };
}

/** Undefined when the test server answers a query, otherwise why it cannot be used. @internal */
export async function postgresAvailable(): Promise<string | undefined> {
  try {
    await withAdmin((c) => c.query("SELECT 1"));
    return undefined;
  } catch (err) {
    return `PostgreSQL is not reachable at ${redact(TEST_POSTGRES_URL)} (${(err as Error).message}); start it or set SOLO_TEST_POSTGRES_URL`;
  }
}

/**
 * Why the PostgreSQL cases skip, or undefined to run them. Throws when PostgreSQL is missing and
 * `CI=true`: CI must exercise both backends, so there a missing server fails the run.
 * @internal
 */
export async function postgresSkipReason(): Promise<string | undefined> {
  const reason = await postgresAvailable();
  if (reason !== undefined && process.env.CI === "true") {
    throw new Error(`PostgreSQL is required in CI (CI=true), but ${reason}`);
  }
  return reason;
}
