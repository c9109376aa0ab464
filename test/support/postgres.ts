/**
 * PostgreSQL helpers for the store's tests: a throwaway database per test, and the policy for a
 * machine without PostgreSQL (skip with a reason locally, fail in CI).
 * @internal
 */
import { createScratchDatabase, type ScratchDatabase, unreachable } from "../../src/store/postgres/scratch-database.ts";

/** The server the tests create their databases on. @internal */
export const TEST_POSTGRES_URL = process.env.SOLO_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** A database created for one test, and how to get rid of it. @internal */
export type TestDatabase = ScratchDatabase;

/** Creates a fresh, empty database `solo_test_<pid>_<random hex>` on the test server. @internal */
export function createTestDatabase(): Promise<TestDatabase> {
  return createScratchDatabase(TEST_POSTGRES_URL, "solo_test");
}

/** Undefined when the test server answers a query, otherwise why it cannot be used. @internal */
export function postgresAvailable(): Promise<string | undefined> {
  return unreachable(TEST_POSTGRES_URL, "SOLO_TEST_POSTGRES_URL");
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
