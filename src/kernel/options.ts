import { availableParallelism, totalmem } from "node:os";
import type { Clock } from "../api/kernel.ts";
import type { ServiceLimits, TenantLimits } from "../api/limits.ts";
import type { LogEntry } from "../api/services.ts";
import type { SupervisionPolicy } from "../api/supervision.ts";
import { parseBytes } from "../lib/bytes.ts";
import { type At, checkKeys, checkObject, checkWhole } from "../lib/check.ts";
import { SoloError } from "../lib/errors/errors.ts";
import { DEFAULT_LIMITS, DEFAULT_TENANT_LIMITS, resolveLimits, resolveTenantLimits } from "./limits.ts";
import { checkFetchPolicy as checkFetchPolicyFields, type FetchPolicy } from "./powers/fetch/index.ts";
import { DEFAULT_SUPERVISION, resolveSupervision, SYSTEM_CLOCK } from "./supervisor/policy.ts";
import { parseMasterKey } from "./vault/cipher.ts";

// openKernel's options, checked once at open: each bad option is named in its error.

const DEFAULT_MAX_CODE_BYTES = 1024 * 1024;
const OPTION_KEYS = new Set([
  "dataDir",
  "schedulers",
  "limits",
  "maxCodeBytes",
  "onLog",
  "database",
  "supervision",
  "clock",
  "tenantLimits",
  "analyzer",
  "masterKey",
  "fetch",
  "memoryBudgetBytes",
]);

const MiB = 1024 * 1024;
/** The smallest memory budget: one tenant at the engine's minimum. */
const MIN_BUDGET_BYTES = 16 * MiB;

/**
 * The memory budget when none is given: half of what this process may use (the host's memory, or
 * its cgroup's limit when that is lower), so tenants together can never take the host down.
 */
export function defaultMemoryBudget(): number {
  const constrained = process.constrainedMemory();
  const host = constrained > 0 ? Math.min(constrained, totalmem()) : totalmem();
  return Math.max(MIN_BUDGET_BYTES, Math.floor(host / 2 / MiB) * MiB);
}

/** The options with every default filled in. @internal */
export interface ResolvedOptions {
  readonly analyzer: "enforce" | "warn";
  readonly database: string | undefined;
  readonly tenantLimits: TenantLimits;
  readonly supervision: SupervisionPolicy;
  readonly clock: Clock;
  readonly dataDir: string;
  readonly schedulers: number;
  readonly limits: ServiceLimits;
  readonly maxCodeBytes: number;
  readonly onLog: ((entry: LogEntry) => void) | undefined;
  readonly masterKey: string | undefined;
  readonly fetch: FetchPolicy;
  readonly memoryBudgetBytes: number;
}

/** Checks openKernel's options. @internal */
export function checkOptions(options: unknown): ResolvedOptions {
  const at: At = { reason: "SOLO_ERR_KERNEL_OPTIONS_INVALID", field: "", label: "openKernel options" };
  const o = checkObject(options, at);
  checkKeys(o, OPTION_KEYS, { ...at, label: "openKernel" }, "option");
  const dataDir = o.dataDir ?? "./.solo";
  if (typeof dataDir !== "string" || dataDir === "") {
    throw new SoloError("SOLO_ERR_KERNEL_OPTIONS_INVALID", "openKernel: dataDir must be a non-empty path", { field: "dataDir" });
  }
  const option = (field: string): At => ({ ...at, field, label: `openKernel: ${field}` });
  const schedulers = checkWhole(o.schedulers ?? availableParallelism(), { min: 1, max: 256 }, option("schedulers"));
  const maxCodeBytes = checkWhole(
    o.maxCodeBytes ?? DEFAULT_MAX_CODE_BYTES,
    { min: 1024, max: 16 * 1024 * 1024, unit: "bytes" },
    option("maxCodeBytes"),
  );
  if (o.onLog !== undefined && typeof o.onLog !== "function") {
    throw new SoloError("SOLO_ERR_KERNEL_OPTIONS_INVALID", "openKernel: onLog must be a function", { field: "onLog" });
  }
  const database = o.database ?? process.env.SOLO_DATABASE_URL;
  if (database !== undefined && (typeof database !== "string" || !/^postgres(ql)?:\/\/./.test(database))) {
    throw new SoloError("SOLO_ERR_KERNEL_OPTIONS_INVALID", "openKernel: database must be a postgres:// URL", {
      field: o.database === undefined ? "SOLO_DATABASE_URL" : "database",
      hint: "for example postgres://postgres@127.0.0.1:5432/solo; leave it out to use SQLite in the data directory",
    });
  }
  const clock = o.clock ?? (SYSTEM_CLOCK satisfies Clock);
  if (
    clock === null ||
    typeof clock !== "object" ||
    ["now", "setTimeout", "clearTimeout", "random"].some((k) => typeof (clock as Record<string, unknown>)[k] !== "function")
  ) {
    throw new SoloError("SOLO_ERR_KERNEL_OPTIONS_INVALID", "openKernel: clock must have now, setTimeout, clearTimeout and random", {
      field: "clock",
    });
  }
  const analyzerMode = o.analyzer ?? "enforce";
  if (analyzerMode !== "enforce" && analyzerMode !== "warn") {
    throw new SoloError("SOLO_ERR_KERNEL_OPTIONS_INVALID", 'openKernel: analyzer must be "enforce" or "warn"', { field: "analyzer" });
  }
  return {
    analyzer: analyzerMode,
    database,
    tenantLimits: resolveTenantLimits(o.tenantLimits, DEFAULT_TENANT_LIMITS),
    supervision: resolveSupervision(o.supervision, DEFAULT_SUPERVISION),
    clock: clock as Clock,
    dataDir,
    schedulers,
    limits: resolveLimits(o.limits, DEFAULT_LIMITS),
    maxCodeBytes,
    onLog: o.onLog as ((entry: LogEntry) => void) | undefined,
    masterKey: checkMasterKeyOption(o.masterKey),
    fetch: checkFetchPolicy(o.fetch),
    memoryBudgetBytes: checkBudget(o.memoryBudgetBytes),
  };
}

function checkBudget(given: unknown): number {
  const env = process.env.SOLO_MEMORY_BUDGET;
  const value = given ?? (env !== undefined && env !== "" ? parseBytes(env) : undefined);
  if (value === undefined) return defaultMemoryBudget();
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < MIN_BUDGET_BYTES) {
    throw new SoloError(
      "SOLO_ERR_KERNEL_OPTIONS_INVALID",
      `openKernel: memoryBudgetBytes must be an integer of at least ${MIN_BUDGET_BYTES} bytes (16 MiB)`,
      { field: given === undefined ? "SOLO_MEMORY_BUDGET" : "memoryBudgetBytes" },
    );
  }
  return value;
}

function checkFetchPolicy(given: unknown): FetchPolicy {
  if (given === undefined) return {};
  if (given === null || typeof given !== "object" || Array.isArray(given)) {
    throw new SoloError("SOLO_ERR_KERNEL_OPTIONS_INVALID", "openKernel: fetch must be an object like { allowAddresses, ca, lookup }", {
      field: "fetch",
    });
  }
  const f = given as Record<string, unknown>;
  for (const k of Object.keys(f)) {
    if (k !== "allowAddresses" && k !== "ca" && k !== "lookup") {
      throw new SoloError("SOLO_ERR_KERNEL_OPTIONS_INVALID", `openKernel: unknown fetch option ${JSON.stringify(k.slice(0, 80))}`, {
        field: `fetch.${k.slice(0, 80)}`,
      });
    }
  }
  return checkFetchPolicyFields(given as FetchPolicy);
}

// A malformed key is refused at open, not at the first secret (the error never echoes it).
function checkMasterKeyOption(given: unknown): string | undefined {
  if (given === undefined) {
    const env = process.env.SOLO_MASTER_KEY || undefined;
    if (env !== undefined) parseMasterKey(env, "SOLO_MASTER_KEY");
    return env;
  }
  if (typeof given !== "string") {
    throw new SoloError("SOLO_ERR_KERNEL_OPTIONS_INVALID", "openKernel: masterKey must be a string (32 bytes in hex or base64)", {
      field: "masterKey",
    });
  }
  parseMasterKey(given, "the masterKey option");
  return given;
}
