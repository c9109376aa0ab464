import { join } from "node:path";
import { openPostgresStore } from "./postgres/postgres-store.ts";
import { openSqliteStore } from "./sqlite/sqlite-store.ts";
import type { Store } from "./store.ts";

/** The SQLite file's name inside the data directory. */
export const SQLITE_FILE = "solo.db";

/**
 * Opens the kernel's store: PostgreSQL when a `postgres://` URL is given, otherwise the embedded
 * SQLite file in the data directory.
 * @internal
 */
export function openStore(dataDir: string, database: string | undefined): Promise<Store> {
  if (database !== undefined) return openPostgresStore(database);
  return openSqliteStore(join(dataDir, SQLITE_FILE));
}
