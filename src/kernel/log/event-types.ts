import { NAME_PATTERN } from "../../lib/names.ts";

/**
 * The closed list of the kernel's own event types. `docs/events.md` documents each one (and says
 * which part emits it); a test keeps the two in step. Services add their own events under
 * `svc.<service>.<name>` (see {@link customEventType}).
 */
export const EVENT_TYPES = [
  // the kernel itself
  "kernel_started",
  "kernel_stopped",
  "scheduler_replaced",
  // deployment and lifecycle
  "service_deployed",
  "service_deployment_failed",
  "service_started",
  "service_crashed",
  "service_killed",
  "service_restarted",
  "service_failed",
  // hot swap
  "hot_swap_started",
  "hot_swap_succeeded",
  "hot_swap_failed",
  "hot_swap_rolled_back",
  // resources and breakers
  "resource_violation",
  "circuit_breaker_opened",
  "circuit_breaker_closed",
  // tenants and capabilities
  "tenant_created",
  "tenant_updated",
  "tenant_deleted",
  "capability_granted",
  "capability_revoked",
  "capability_denied",
  "capability_verified",
  // secrets (names only, never values)
  "secret_stored",
  "secret_accessed",
  "secret_access_denied",
  "secret_revoked",
  "secret_tampered",
  "vault_key_created",
  "vault_key_rotated",
  "vault_master_rotated",
  // a service's gated powers
  "grant_denied",
] as const;

/** One of the kernel's event types. */
export type KernelEventType = (typeof EVENT_TYPES)[number];

const KERNEL_TYPES: ReadonlySet<string> = new Set(EVENT_TYPES);

/** The name part of a custom event type: 1-64 of a-z, 0-9, `_`, `-`, `.`; starts with a letter, ends with a letter or digit. */
export const CUSTOM_EVENT_NAME = /^[a-z](?:[a-z0-9_.-]{0,62}[a-z0-9])?$/;

/** The type of a custom event a service emits: `svc.<service>.<name>`. */
export function customEventType(service: string, name: string): string {
  return `svc.${service}.${name}`;
}

/** Whether `type` is a kernel type or a well-formed custom type. */
export function isEventType(type: string): boolean {
  if (KERNEL_TYPES.has(type)) return true;
  if (!type.startsWith("svc.")) return false;
  const dot = type.indexOf(".", 4);
  if (dot < 0) return false;
  return NAME_PATTERN.test(type.slice(4, dot)) && CUSTOM_EVENT_NAME.test(type.slice(dot + 1));
}
