// The kernel's own event types (EVENT_TYPES, a public list kept in src/api/events.ts) and services'
// custom ones, `svc.<service>.<name>`.

import { EVENT_TYPES } from "../../api/events.ts";
import { NAME_PATTERN } from "../../lib/names.ts";

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
