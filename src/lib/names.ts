import { SoloError } from "./errors/errors.ts";

/**
 * The identifier grammar for tenants and services: 1 to 63 characters, lower-case ASCII letters,
 * digits, `-` and `_`, starting with a letter and not ending with `-` or `_`. Such names are safe
 * in URLs, file names, metric labels and log lines without escaping.
 */
export const NAME_PATTERN = /^[a-z](?:[a-z0-9_-]{0,61}[a-z0-9])?$/;

/** The longest tenant or service name. */
export const NAME_MAX_LENGTH = 63;

/** A validated tenant name. */
export type TenantName = string & { readonly __brand: "TenantName" };
/** A validated service name. */
export type ServiceName = string & { readonly __brand: "ServiceName" };

/** Checks one identifier; `field` names the argument in the error ("tenant", "service"). */
export function checkName(value: unknown, field: string): string {
  if (typeof value !== "string") {
    throw new SoloError("SOLO_ERR_NAME_INVALID", `${field} must be a string, got ${describeType(value)}`, {
      field,
      hint: "names are 1-63 characters of a-z, 0-9, '-' and '_', starting with a letter",
    });
  }
  if (!NAME_PATTERN.test(value)) {
    const shown = value.length > 80 ? `${JSON.stringify(value.slice(0, 80))}... (${value.length} characters)` : JSON.stringify(value);
    throw new SoloError("SOLO_ERR_NAME_INVALID", `${field} ${shown} is not a valid name: ${whyInvalid(value)}`, {
      field,
      hint: "names are 1-63 characters of a-z, 0-9, '-' and '_', starting with a letter and ending with a letter or digit",
    });
  }
  return value;
}

/** Validates a tenant name. */
export function checkTenant(value: unknown): TenantName {
  return checkName(value, "tenant") as TenantName;
}

/** Validates a service name. */
export function checkService(value: unknown, field = "service"): ServiceName {
  return checkName(value, field) as ServiceName;
}

function whyInvalid(value: string): string {
  if (value.length === 0) return "it is empty";
  if (value.length > NAME_MAX_LENGTH) return `it is ${value.length} characters long (at most ${NAME_MAX_LENGTH})`;
  if (!/^[a-z]/.test(value)) return "it must start with a lower-case letter";
  const bad = [...value].find((ch) => !/[a-z0-9_-]/.test(ch));
  if (bad !== undefined) return `it contains ${JSON.stringify(bad)}; only a-z, 0-9, '-' and '_' are allowed`;
  return "it must end with a letter or digit";
}

/** A short description of a value's type for error messages. */
export function describeType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  const t = typeof value;
  return t === "object" ? "an object" : t;
}

/** A tag: 1-64 of a-z, 0-9, `_`, `.`, `:`, `-`, starting with a letter or digit. */
/** A request id, and so an event's correlation id: 1-128 of `A-Za-z0-9._:-`. */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

export const TAG_PATTERN = /^[a-z0-9][a-z0-9_.:-]{0,63}$/;
const MAX_TAGS = 32;
const MAX_METADATA_BYTES = 4096;

/** Tags and metadata a deploy gives a service, for discovery. */
export interface ServiceMeta {
  readonly tags: readonly string[];
  readonly metadata: Readonly<Record<string, string | number | boolean | null>>;
}

/** No tags, no metadata. */
export const NO_META: ServiceMeta = Object.freeze({ tags: Object.freeze([]), metadata: Object.freeze({}) });

/** Validates a deploy's `tags` and `metadata` (flat JSON: string, number, boolean or null values). */
export function checkMeta(tags: unknown, metadata: unknown): ServiceMeta {
  if (tags === undefined && metadata === undefined) return NO_META;
  const t = tags ?? [];
  if (!Array.isArray(t) || t.length > MAX_TAGS) {
    throw new SoloError("SOLO_ERR_REQUEST_INVALID", `deploy: tags must be an array of at most ${MAX_TAGS} tags`, { field: "tags" });
  }
  for (const tag of t) {
    if (typeof tag !== "string" || !TAG_PATTERN.test(tag)) {
      throw new SoloError(
        "SOLO_ERR_REQUEST_INVALID",
        `deploy: tag ${JSON.stringify(String(tag).slice(0, 80))} is not valid: 1-64 of a-z, 0-9, '_', '.', ':', '-', starting with a letter or digit`,
        { field: "tags" },
      );
    }
  }
  const m = metadata ?? {};
  if (m === null || typeof m !== "object" || Array.isArray(m) || Object.getPrototypeOf(m) !== Object.prototype) {
    throw new SoloError("SOLO_ERR_REQUEST_INVALID", "deploy: metadata must be a plain object", { field: "metadata" });
  }
  const out: Record<string, string | number | boolean | null> = {};
  for (const [k, v] of Object.entries(m)) {
    if (v !== null && typeof v !== "string" && typeof v !== "boolean" && !(typeof v === "number" && Number.isFinite(v))) {
      throw new SoloError(
        "SOLO_ERR_REQUEST_INVALID",
        `deploy: metadata.${k.slice(0, 80)} must be a string, finite number, boolean or null`,
        {
          field: `metadata.${k.slice(0, 80)}`,
        },
      );
    }
    out[k] = v;
  }
  if (Buffer.byteLength(JSON.stringify(out)) > MAX_METADATA_BYTES) {
    throw new SoloError("SOLO_ERR_REQUEST_INVALID", `deploy: metadata is over ${MAX_METADATA_BYTES} bytes of JSON`, { field: "metadata" });
  }
  return Object.freeze({ tags: Object.freeze([...new Set(t as string[])]), metadata: Object.freeze(out) });
}

/** A service pattern, as tokens' `call:`/`deploy:` and `grants.call` take it: a name, a prefix ending in `*` (`billing-*`), or `*`. */
export const SERVICE_PATTERN = /^(?:\*|[a-z][a-z0-9_-]{0,62}\*?)$/;

/** Whether service `name` is one that `pattern` (see {@link SERVICE_PATTERN}) names. */
export function serviceMatches(pattern: string, name: string): boolean {
  if (pattern === "*") return true;
  if (pattern.endsWith("*")) return name.startsWith(pattern.slice(0, -1));
  return pattern === name;
}

/** A file name as an author deployed it: 1-128 of letters, digits, `.`, `_`, `-`, not starting with a dot. */
export const FILE_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/** `value` as a deployed file's name, or SOLO_ERR_REQUEST_INVALID naming `field`. */
export function checkFile(value: unknown, field = "file"): string {
  if (typeof value !== "string" || !FILE_PATTERN.test(value)) {
    throw new SoloError(
      "SOLO_ERR_REQUEST_INVALID",
      `${field} must be a file name of 1-128 letters, digits, '.', '_' or '-' (like billing.ts), got ${typeof value === "string" ? JSON.stringify(value.slice(0, 80)) : describeType(value)}`,
      { field, hint: "pass the file's name only, without a directory" },
    );
  }
  return value;
}
