// The checks every input path shares: an object, only known fields, an integer in range, a
// flag. Each takes where the value sits (`field`, as the reader wrote it) and the reason that
// refuses it, and throws one SoloError that names the field, says what was wrong and what is
// accepted. The parts keep what only they know (which fields, which ranges); the wording lives here.

import { type Reason, SoloError } from "./errors/errors.ts";
import { describeType } from "./names.ts";

/** Where a value sits in the reader's input, and the reason that refuses it. */
export interface At {
  readonly reason: Reason;
  /** The value's path as the reader wrote it (`limits`, `grants.fetch`); "" for the whole input. */
  readonly field: string;
  /** How the message names the value, where not by `field`: `openKernel options` (field ""). */
  readonly label?: string;
  /** What the reader should do, when the part has a better word than the check's own. */
  readonly hint?: string;
}

/** An integer's accepted range, and its unit for the message. */
export interface Range {
  readonly min: number;
  readonly max: number;
  readonly unit?: string;
}

/** Keys this long are clipped in messages and `details.field`. */
const KEY_SHOWN = 80;

/** `value` as a plain object (not null, not an array), or an error naming `at.field`. */
export function checkObject(value: unknown, at: At, example?: string): Readonly<Record<string, unknown>> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    const like = example === undefined ? "" : ` like ${example}`;
    throw new SoloError(at.reason, `${at.label ?? at.field} must be an object${like}, got ${describeType(value)}`, {
      field: at.field,
      ...hint(at),
    });
  }
  return value as Readonly<Record<string, unknown>>;
}

/**
 * Refuses the first key of `value` that is not in `known`, naming it and listing the known ones.
 * `noun` is what a key is (`limit`, `field`, `power`). With `at.field` empty the keys are
 * top-level and `at.label` names what was asked (`deploy`, `tenants.create`).
 */
export function checkKeys(
  value: Readonly<Record<string, unknown>>,
  known: ReadonlySet<string> | readonly string[],
  at: At,
  noun: string,
): void {
  const has = known instanceof Set ? (k: string) => known.has(k) : (k: string) => (known as readonly string[]).includes(k);
  for (const key of Object.keys(value)) {
    if (has(key)) continue;
    const shown = key.slice(0, KEY_SHOWN);
    const listed = [...known].join(", ");
    if (at.field === "") {
      const asked = at.label ?? "the request";
      throw new SoloError(at.reason, `${asked}: unknown ${noun} ${JSON.stringify(shown)}`, {
        field: shown,
        hint: at.hint ?? `${asked} takes ${listed}`,
      });
    }
    throw new SoloError(at.reason, `${at.field}.${shown} is not ${article(noun)} ${noun}`, {
      field: `${at.field}.${shown}`,
      hint: at.hint ?? `the ${noun}s of ${at.field} are ${listed}`,
    });
  }
}

/** `value` as an integer in `range`, or an error naming `at.field` and the range. */
export function checkWhole(value: unknown, range: Range, at: At): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < range.min || value > range.max) {
    const got = typeof value === "number" ? String(value) : describeType(value);
    throw new SoloError(
      at.reason,
      `${at.label ?? at.field} must be an integer from ${range.min} to ${range.max}${range.unit === undefined ? "" : ` ${range.unit}`}, got ${got}`,
      { field: at.field, min: range.min, max: range.max, ...hint(at) },
    );
  }
  return value;
}

/** `value` as true or false (`undefined` is `fallback`), or an error naming `at.field`. */
export function checkFlag(value: unknown, at: At, fallback = false): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") {
    throw new SoloError(at.reason, `${at.label ?? at.field} must be true or false, got ${describeType(value)}`, {
      field: at.field,
      ...hint(at),
    });
  }
  return value;
}

function hint(at: At): { hint?: string } {
  return at.hint === undefined ? {} : { hint: at.hint };
}

function article(noun: string): string {
  return /^[aeiou]/.test(noun) ? "an" : "a";
}
