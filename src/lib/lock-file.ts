import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { link, open, readFile, rm, writeFile } from "node:fs/promises";

/**
 * Lock files that name their holder: `pid\ntoken\n`, written to a private file and hard-linked into
 * place, so the lock appears with its content already in it and two lockers can never both take
 * it. A lock whose process is gone is taken over; this process's own pid counts as alive only for
 * a lock it holds (a process restarted with the same pid, pid 1 in a container, takes over what
 * its predecessor left). Used for the data directory and for its `tls/` directory.
 * @internal
 */
export interface LockFile {
  /** Removes the lock file, if it is still this one's; safe to call twice. */
  release(): Promise<void>;
}

/** The tokens of the locks this process holds or is taking (known before the file exists). */
const held = new Set<string>();

/**
 * Tries to take the lock at `path` (a few times, taking over dead holders' locks). Returns the
 * lock, or the pid of the live process holding it (undefined if it kept changing hands). Errors
 * other than contention (a missing directory, permissions) are thrown as they are.
 */
export async function tryLock(path: string): Promise<{ readonly lock: LockFile } | { readonly holder: number | undefined }> {
  const token = randomBytes(8).toString("hex");
  const mine = `${process.pid}\n${token}\n`;
  let holder: number | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    held.add(token);
    try {
      if (await createWithContent(path, mine)) {
        let released = false;
        return {
          lock: {
            release: async () => {
              if (released) return;
              released = true;
              held.delete(token);
              // Only our own lock: after a takeover the file may be another process's.
              if ((await read(path)) === mine) await rm(path, { force: true });
            },
          },
        };
      }
    } catch (err) {
      held.delete(token);
      throw err;
    }
    held.delete(token);
    const content = await read(path);
    if (content === undefined) continue; // released in between: try again at once
    const [pidText, theirs] = content.split("\n");
    const pid = Number(pidText);
    const alive = Number.isSafeInteger(pid) && pid > 0 && (pid === process.pid ? held.has(theirs ?? "") : isAlive(pid));
    if (alive) return { holder: pid };
    holder = undefined;
    // Left by a process that is gone. Removed only if it still holds what we read, so a lock
    // just taken over by another process is not removed in its place.
    if ((await read(path)) === content) await rm(path, { force: true });
  }
  return { holder };
}

/** Creates `target` holding `content` from its first instant; false if it exists already. */
async function createWithContent(target: string, content: string): Promise<boolean> {
  const temp = tempName(target);
  await writeFile(temp, content, { mode: 0o600, flag: "wx" });
  try {
    await link(temp, target);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  } finally {
    await rm(temp, { force: true });
  }
}

async function read(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** A private temporary name beside `target`: `<target>.<pid>.<12 hex>.tmp` (see {@link TEMP_NAME}). */
export function tempName(target: string): string {
  return `${target}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
}

/** What {@link tempName} makes; its first group is the writer's pid. */
export const TEMP_NAME = /^.+\.(\d+)\.[0-9a-f]{12}\.tmp$/;

/** Whether a process exists (one we may not signal exists too). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Makes a directory's entries (a new or renamed file) durable. */
export async function syncDir(dir: string): Promise<void> {
  if (process.platform === "win32") return;
  const fh = await open(dir, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
