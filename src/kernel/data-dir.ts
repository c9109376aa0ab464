import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { SoloError } from "../lib/errors/errors.ts";
import { words } from "../lib/errors/transport.ts";
import { tryLock } from "../lib/lock-file.ts";

/** A data directory held by this process. @internal */
export interface DataDirLock {
  /** The absolute path of the directory. */
  readonly path: string;
  /** Removes the lock file; safe to call twice. */
  release(): Promise<void>;
}

const LOCK_FILE = "kernel.lock";

/**
 * Creates the data directory (mode 0700) if needed and takes its lock, so two kernels never share
 * one directory. A lock left by a process that no longer exists is taken over (see lock-file.ts).
 * @internal
 */
export async function lockDataDir(dir: string): Promise<DataDirLock> {
  const path = resolve(dir);
  try {
    await mkdir(path, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new SoloError(
      "SOLO_ERR_KERNEL_DATA_DIR",
      `cannot create the data directory ${path}: ${(err as Error).message}`,
      { dataDir: path },
      { cause: err },
    );
  }
  const lockPath = join(path, LOCK_FILE);
  let taken: Awaited<ReturnType<typeof tryLock>>;
  try {
    taken = await tryLock(lockPath);
  } catch (err) {
    throw new SoloError(
      "SOLO_ERR_KERNEL_DATA_DIR",
      `cannot lock the data directory ${path}: ${(err as Error).message}`,
      { dataDir: path },
      { cause: err },
    );
  }
  if ("lock" in taken) return { path, release: taken.lock.release };
  if (taken.holder === undefined) {
    throw new SoloError("SOLO_ERR_KERNEL_DATA_DIR_LOCKED", `the data directory ${path} is being locked by another process`, {
      dataDir: path,
    });
  }
  throw new SoloError("SOLO_ERR_KERNEL_DATA_DIR_LOCKED", `the data directory ${path} is in use by process ${taken.holder}`, {
    dataDir: path,
    pid: taken.holder,
    hint: `stop that kernel first, or open this one with another ${words("kernel.dataDir")}`,
  });
}
