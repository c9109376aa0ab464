import { randomBytes } from "node:crypto";
import { link, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { SoloError } from "../errors.ts";

/** A data directory held by this process. @internal */
export interface DataDirLock {
  /** The absolute path of the directory. */
  readonly path: string;
  /** Removes the lock file; safe to call twice. */
  release(): Promise<void>;
}

const LOCK_FILE = "kernel.lock";
/** The tokens of the locks this process holds or is taking (a token is written after the pid). */
const held = new Set<string>();

/**
 * Creates the data directory (mode 0700) if needed and takes its lock, so two kernels never share
 * one directory. A lock left by a process that no longer exists is taken over.
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
  const token = randomBytes(8).toString("hex");
  const mine = `${process.pid}\n${token}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      // Known before the lock exists, so no locker of this process can read it as stale.
      held.add(token);
      await createWithContent(lockPath, mine).catch((err: unknown) => {
        held.delete(token);
        throw err;
      });
      let released = false;
      return {
        path,
        release: async () => {
          if (released) return;
          released = true;
          held.delete(token);
          // Only our own lock: after a takeover the file may be another kernel's.
          if ((await readFile(lockPath, "utf8").catch(() => "")) === mine) await rm(lockPath, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new SoloError(
          "SOLO_ERR_KERNEL_DATA_DIR",
          `cannot lock the data directory ${path}: ${(err as Error).message}`,
          { dataDir: path },
          { cause: err },
        );
      }
      const content = await readFile(lockPath, "utf8").catch(() => "");
      const holder = Number.parseInt(content, 10);
      // Our own pid counts as alive only for a lock this process holds: a kernel restarted with
      // the same pid (pid 1 in a container) takes over the lock its crashed predecessor left.
      if (Number.isInteger(holder) && holder > 0 && (holder === process.pid ? held.has(content.split("\n")[1] ?? "") : isAlive(holder))) {
        throw new SoloError("SOLO_ERR_KERNEL_DATA_DIR_LOCKED", `the data directory ${path} is in use by process ${holder}`, {
          dataDir: path,
          pid: holder,
          hint: "stop that kernel first, or open this one with another dataDir",
        });
      }
      // Left by a process that is gone. Removed only if it still holds what we read, so a lock
      // just taken over by another kernel is not removed in its place.
      if ((await readFile(lockPath, "utf8").catch(() => "")) === content) await rm(lockPath, { force: true });
    }
  }
  throw new SoloError("SOLO_ERR_KERNEL_DATA_DIR_LOCKED", `the data directory ${path} is being locked by another process`, {
    dataDir: path,
  });
}

// The lock file appears with its content already in it (written to a private file, then
// hard-linked into place, which fails if the lock exists), so nobody ever reads an empty lock.
async function createWithContent(target: string, content: string): Promise<void> {
  const temp = `${target}.${process.pid}.${randomBytes(6).toString("hex")}`;
  await writeFile(temp, content, { mode: 0o600, flag: "wx" });
  try {
    await link(temp, target);
  } finally {
    await rm(temp, { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
