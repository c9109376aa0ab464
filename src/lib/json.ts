/** JSON.stringify's replacer for protobuf-es messages: 64-bit integers as numbers, no type tag. */
export function jsonReplacer(key: string, v: unknown): unknown {
  if (key === "$typeName") return undefined;
  return typeof v === "bigint" ? Number(v) : v;
}

/** A message (or any value) as plain JSON data. */
export function plainJson(v: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(v ?? {}, jsonReplacer)) as Record<string, unknown>;
}
