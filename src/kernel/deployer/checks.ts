// A deploy's and a swap's input, checked before anything changes: names, the fields, the code's
// size, and the analyzer's verdict on it.

import type { ServiceGrants } from "../../api/grants.ts";
import type { ServiceLimits } from "../../api/limits.ts";
import type { SupervisionPolicy } from "../../api/supervision.ts";
import type { Via } from "../../api/tokens.ts";
import { type At, checkKeys, checkObject } from "../../lib/check.ts";
import { SoloError } from "../../lib/errors/errors.ts";
import {
  checkFile,
  checkMeta,
  checkService,
  checkTenant,
  describeType,
  type ServiceMeta,
  type ServiceName,
  type TenantName,
} from "../../lib/names.ts";
import { encodeJson } from "../../sandbox/json.ts";
import { stripTypes } from "../../sandbox/typescript.ts";
import { analyze, type Finding } from "../analyzer/index.ts";
import type { Authority } from "../auth/authority.ts";
import type { Principal } from "../auth/tokens.ts";
import { resolveLimits } from "../limits.ts";
import { grantPermissions, resolveGrants } from "../powers/grants.ts";
import { resolveSupervision } from "../supervisor/policy.ts";
import { sourceName } from "./launch.ts";

const DEPLOY_KEYS = new Set(["tenant", "service", "code", "args", "limits", "supervision", "tags", "metadata", "grants", "file"]);
/** Findings kept in an error's details and in the deploy event. */
export const FINDINGS_RECORDED = 50;

/** A deploy's fields, checked and resolved over the kernel's defaults. */
export interface CheckedDeploy {
  readonly code: string;
  readonly args: string;
  readonly limits: ServiceLimits;
  readonly supervision: SupervisionPolicy;
  readonly meta: ServiceMeta;
  readonly grants: ServiceGrants;
  readonly file: string | undefined;
}

export class CodeChecks {
  private readonly maxCodeBytes: number;
  private readonly mode: "enforce" | "warn";
  private readonly limits: ServiceLimits;
  private readonly supervision: SupervisionPolicy;

  constructor(opts: {
    readonly maxCodeBytes: number;
    readonly analyzer: "enforce" | "warn";
    readonly limits: ServiceLimits;
    readonly supervision: SupervisionPolicy;
  }) {
    this.maxCodeBytes = opts.maxCodeBytes;
    this.mode = opts.analyzer;
    this.limits = opts.limits;
    this.supervision = opts.supervision;
  }

  // The rest of a deploy request, once checkIdentity has found an object with valid names.
  deploy(s: Readonly<Record<string, unknown>>): CheckedDeploy {
    checkKeys(s, DEPLOY_KEYS, { reason: "SOLO_ERR_REQUEST_INVALID", field: "", label: "deploy" }, "field");
    const code = this.code(s.code, "deploy");
    const limits = resolveLimits(s.limits, this.limits);
    const supervision = resolveSupervision(s.supervision, this.supervision);
    const args = s.args === undefined ? "" : encodeJson(s.args, "deploy args", limits.messageBytes);
    const file = s.file === undefined ? undefined : checkFile(s.file);
    return { code, args, limits, supervision, meta: checkMeta(s.tags, s.metadata), grants: resolveGrants(s.grants), file };
  }

  code(code: unknown, what: string): string {
    if (typeof code !== "string" || code.trim() === "") {
      throw new SoloError(
        "SOLO_ERR_REQUEST_INVALID",
        `${what}: code must be a non-empty string of JavaScript or TypeScript, got ${describeType(code)}`,
        { field: "code" },
      );
    }
    const size = Buffer.byteLength(code);
    if (size > this.maxCodeBytes) {
      throw new SoloError("SOLO_ERR_DEPLOY_CODE_TOO_LARGE", `${what}: code is ${size} bytes, over the limit of ${this.maxCodeBytes}`, {
        field: "code",
        limit: this.maxCodeBytes,
      });
    }
    return code;
  }

  // The analyzer reads the code with its types stripped (positions are the author's). Its errors
  // refuse the code with every finding attached; its warnings travel with the result.
  analyze(code: string, service: string, what: string, file?: string): { stripped: string; findings: Finding[] } {
    const stripped = stripTypes(code, sourceName(service, file, true));
    const { findings } = analyze(stripped);
    const errors = findings.filter((f) => f.severity === "error");
    if (errors.length > 0 && this.mode === "enforce") {
      const first = errors[0] as Finding;
      throw new SoloError(
        "SOLO_ERR_DEPLOY_REJECTED",
        `${what}: the analyzer found ${errors.length} error${errors.length === 1 ? "" : "s"}; first at ${file === undefined ? "" : `${file}:`}line ${first.line}, column ${first.column}: ${first.message}`,
        { findings: findings.slice(0, FINDINGS_RECORDED), hint: first.hint },
      );
    }
    return { stripped, findings };
  }
}

/** A deploy request's names, the first thing checked (the token's permission depends on them). */
export function checkIdentity(spec: unknown): { tenant: TenantName; service: ServiceName; fields: Readonly<Record<string, unknown>> } {
  const at: At = { reason: "SOLO_ERR_REQUEST_INVALID", field: "", label: "a deploy request" };
  const s = checkObject(spec, at, "{ tenant, service, code, args?, limits? }");
  return { tenant: checkTenant(s.tenant), service: checkService(s.service), fields: s };
}

/** Refuses a version number that is given but not a positive integer. */
export function checkVersion(operation: string, version: number | undefined): void {
  if (version !== undefined && (!Number.isSafeInteger(version) || version < 1)) {
    throw new SoloError("SOLO_ERR_REQUEST_INVALID", `${operation}: version must be a positive integer`, { field: "version" });
  }
}

/** A token cannot give a service more than it holds: each grant needs its permission (the kernel itself holds all). */
export async function permitGrants(
  authority: Authority,
  p: Principal,
  at: { readonly operation: "deploy" | "swap"; readonly tenant: string; readonly subject: string; readonly via?: Via | undefined },
  grants: ServiceGrants,
): Promise<void> {
  for (const need of grantPermissions(grants)) await authority.permit(p, at, need);
}
