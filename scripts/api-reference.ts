/**
 * Writes `docs/api-reference.md`: the network API's reference, generated from the schema. `buf build`
 * compiles `proto/solo` with its source info (the comments), `@bufbuild/protobuf` turns the
 * descriptors into a registry, `@bufbuild/protoplugin`'s `getComments` finds each element's
 * comment, and each field's protovalidate rules are decoded with the extension descriptor that
 * `@bufbuild/protovalidate` ships (the one the gateway's validator reads), then put in words.
 *
 * `npm run proto` runs it; `src/gateway/schema.test.ts` checks the file is what it prints.
 *
 * @example
 * npx node scripts/api-reference.ts   # rewrites docs/api-reference.md
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type AnyDesc,
  createFileRegistry,
  type DescEnum,
  type DescField,
  type DescFile,
  type DescMessage,
  type DescService,
  fromBinary,
  getOption,
  hasOption,
  ScalarType,
  toJson,
} from "@bufbuild/protobuf";
import { isReflectList, isReflectMessage, type ReflectMessage, reflect } from "@bufbuild/protobuf/reflect";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { getComments, getSyntaxComments } from "@bufbuild/protoplugin";
import {
  type FieldRules,
  FieldRulesSchema,
  field as fieldRules,
  MessageRulesSchema,
  message as messageRules,
  OneofRulesSchema,
  oneof as oneofRules,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

const root = new URL("../", import.meta.url).pathname;

/** The schema's files under `proto/solo`, compiled by buf with their imports and comments. */
export function buildSchema(): DescFile[] {
  const bytes = execFileSync(
    join(root, "node_modules", ".bin", "buf"),
    ["build", "--as-file-descriptor-set", "--path", "proto/solo", "-o", "-#format=binpb"],
    { cwd: root, maxBuffer: 64 * 1024 * 1024, stdio: ["ignore", "pipe", "pipe"] },
  );
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, bytes));
  return [...registry.files].filter((f) => f.name.startsWith("solo/")).sort((a, b) => a.name.localeCompare(b.name));
}

// ---- comments -----------------------------------------------------------------------------

/** A comment's paragraphs, each a list of lines, without the space that follows `//`. */
function paragraphs(text: string | undefined): string[][] {
  if (text === undefined) return [];
  const out: string[][] = [[]];
  for (const raw of text.replace(/\n$/, "").split("\n")) {
    const line = raw.replace(/^ /, "").trimEnd();
    if (line === "") out.push([]);
    else out.at(-1)?.push(line);
  }
  return out.filter((p) => p.length > 0);
}

/** An element's comment: the leading one, then a trailing one if it has both. */
function commentOf(desc: Exclude<AnyDesc, DescFile>): string[][] {
  const c = getComments(desc);
  return [...paragraphs(c.leading), ...paragraphs(c.trailing)];
}

/** A comment as Markdown blocks (lines kept, paragraphs apart). */
function block(ps: string[][]): string {
  return ps.map((p) => p.join("\n")).join("\n\n");
}

/** A comment in one table cell. */
function cell(ps: string[][]): string {
  return escapeCell(ps.map((p) => p.join(" ")).join("<br><br>"));
}

function escapeCell(s: string): string {
  return s.replace(/\|/g, "\\|");
}

/** A code span that survives backticks in its text. */
function code(s: string): string {
  const fence = s.includes("`") ? "``" : "`";
  return `${fence}${fence === "``" ? ` ${s} ` : s}${fence}`;
}

// ---- names and types ----------------------------------------------------------------------

/** The heading of a message or enum: its name within its package (`Outer.Inner` when nested). */
function localName(desc: DescMessage | DescEnum): string {
  const pkg = desc.file.proto.package;
  return pkg ? desc.typeName.slice(pkg.length + 1) : desc.typeName;
}

/** GitHub's anchor for a heading made of a type's local name. */
function anchor(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9_ -]/g, "");
}

/** Links to the types documented here; other types (google.protobuf.*) by their full name. */
function typeRef(desc: DescMessage | DescEnum, documented: ReadonlySet<string>): string {
  if (!documented.has(desc.typeName)) return code(desc.typeName);
  const name = localName(desc);
  return `[${name}](#${anchor(name)})`;
}

function scalarName(s: ScalarType): string {
  return ScalarType[s].toLowerCase();
}

function fieldType(f: DescField, documented: ReadonlySet<string>): string {
  const element = (): string => {
    if (f.message) return typeRef(f.message, documented);
    if (f.enum) return typeRef(f.enum, documented);
    if (f.scalar !== undefined) return code(scalarName(f.scalar));
    throw new Error("api-reference: a field without a type");
  };
  switch (f.fieldKind) {
    case "list":
      return `repeated ${element()}`;
    case "map":
      return `map<${code(scalarName(f.mapKey))}, ${element()}>`;
    default: {
      const t = element();
      if (f.proto.proto3Optional) return `optional ${t}`;
      if (f.oneof) return `${t} (oneof ${code(f.oneof.name)})`;
      return t;
    }
  }
}

// ---- protovalidate rules in words ---------------------------------------------------------

/** A byte count as the docs write it: 16 MiB, 64 KiB, 100 bytes. */
function bytesText(n: bigint | number): string {
  const v = Number(n);
  if (v >= 1024 * 1024 && v % (1024 * 1024) === 0) return `${v / (1024 * 1024)} MiB`;
  if (v >= 1024 && v % 1024 === 0) return `${v / 1024} KiB`;
  return v === 1 ? "1 byte" : `${v} bytes`;
}

/** A bound on a count: "1–63 chars", "≤ 64 items", "non-empty". */
function countText(min: unknown, max: unknown, unit: string, size = false): string | undefined {
  const n = (v: unknown): string => (size ? bytesText(v as bigint) : String(v));
  const u = size ? "" : ` ${unit}`;
  if (min !== undefined && max !== undefined) return `${n(min)}–${n(max)}${u}`;
  if (max !== undefined) return `≤ ${n(max)}${u}`;
  if (min !== undefined) return String(min) === "1" ? "non-empty" : `≥ ${n(min)}${u}`;
  return undefined;
}

/** A bound on a number: "0–600000", "≤ 1000", "> 0". Lower above upper means outside the range. */
function rangeText(set: ReadonlyMap<string, unknown>): string | undefined {
  const lowOp = set.has("gte") ? "≥" : set.has("gt") ? ">" : undefined;
  const highOp = set.has("lte") ? "≤" : set.has("lt") ? "<" : undefined;
  const low = set.get("gte") ?? set.get("gt");
  const high = set.get("lte") ?? set.get("lt");
  const show = (v: unknown): string => (v instanceof Object ? JSON.stringify(v) : String(v));
  if (lowOp && highOp) {
    const inside = typeof low === "object" || typeof high === "object" || Number(low) <= Number(high);
    if (lowOp === "≥" && highOp === "≤" && inside) return `${show(low)}–${show(high)}`;
    return `${lowOp} ${show(low)} ${inside ? "and" : "or"} ${highOp} ${show(high)}`;
  }
  if (lowOp) return `${lowOp} ${show(low)}`;
  if (highOp) return `${highOp} ${show(high)}`;
  return undefined;
}

/** A rule's value as plain data: a nested rules message becomes JSON, a list an array. */
function plain(f: DescField, v: unknown): unknown {
  const one = (x: unknown): unknown => {
    if (isReflectMessage(x)) return toJson(x.desc, x.message);
    if (isReflectList(x)) return [...x].map(one);
    if (x instanceof Uint8Array) return Buffer.from(x).toString("base64");
    if (typeof x === "bigint") return String(x);
    return x;
  };
  if (f.fieldKind === "enum") return f.enum.values.find((e) => e.number === v)?.name ?? v;
  return one(v);
}

function listText(v: unknown): string {
  return (v as unknown[]).map((x) => code(typeof x === "string" ? x : JSON.stringify(x))).join(", ");
}

/** The rules of one type (StringRules, UInt32Rules, RepeatedRules, ...) in words. */
function typedRulesText(r: ReflectMessage): string[] {
  const set = new Map<string, unknown>();
  const fields = new Map<string, DescField>();
  for (const f of r.fields) {
    if (!r.isSet(f)) continue;
    fields.set(f.name, f);
    set.set(f.name, plain(f, r.get(f)));
  }
  const out: string[] = [];
  const done = new Set<string>();
  const take = (min: string, max: string): [unknown, unknown] => {
    done.add(min).add(max);
    return [set.get(min), set.get(max)];
  };
  const push = (s: string | undefined): void => {
    if (s !== undefined) out.push(s);
  };
  // BytesRules counts bytes where StringRules counts chars.
  const bytes = r.desc.name === "BytesRules";
  push(countText(...take("min_len", "max_len"), "chars", bytes));
  push(countText(...take("min_bytes", "max_bytes"), "bytes", true));
  push(countText(...take("min_items", "max_items"), "items"));
  push(countText(...take("min_pairs", "max_pairs"), "pairs"));
  push(rangeText(new Map([...set].filter(([k]) => ["gt", "gte", "lt", "lte"].includes(k)))));
  take("gt", "gte");
  take("lt", "lte");
  const nested = (name: string, label: string): void => {
    const f = fields.get(name);
    if (f?.fieldKind !== "message") return;
    done.add(name);
    out.push(`${label}: ${fieldRulesText(r.get(f) as ReflectMessage).join(", ")}`);
  };
  for (const [name, v] of set) {
    if (done.has(name)) continue;
    const f = fields.get(name) as DescField;
    switch (name) {
      case "len":
        out.push(bytes ? `exactly ${bytesText(v as bigint)}` : `exactly ${String(v)} chars`);
        break;
      case "len_bytes":
        out.push(`exactly ${bytesText(v as bigint)}`);
        break;
      case "pattern":
        out.push(`pattern ${code(String(v))}`);
        break;
      case "prefix":
        out.push(`starts with ${code(String(v))}`);
        break;
      case "suffix":
        out.push(`ends with ${code(String(v))}`);
        break;
      case "contains":
        out.push(`contains ${code(String(v))}`);
        break;
      case "not_contains":
        out.push(`does not contain ${code(String(v))}`);
        break;
      case "const":
        out.push(`= ${code(String(v))}`);
        break;
      case "in":
        out.push(`one of ${listText(v)}`);
        break;
      case "not_in":
        out.push(`none of ${listText(v)}`);
        break;
      case "unique":
        if (v === true) out.push("unique items");
        break;
      case "defined_only":
        if (v === true) out.push("a defined value");
        break;
      case "example":
        out.push(`e.g. ${listText(v)}`);
        break;
      case "items":
        nested("items", "each");
        break;
      case "keys":
        nested("keys", "keys");
        break;
      case "values":
        nested("values", "values");
        break;
      default:
        // Well-known formats (email, hostname, uuid, ...) are booleans in a oneof; anything else
        // is shown as protovalidate names it, so no rule is left out.
        if (f.oneof?.name === "well_known" && v === true) out.push(`a valid ${name.replace(/_/g, " ")}`);
        else out.push(`${name} ${code(JSON.stringify(v))}`);
    }
  }
  return out;
}

/** A field's `buf.validate.field` rules in words. */
function fieldRulesText(r: ReflectMessage): string[] {
  const out: string[] = [];
  for (const f of r.fields) {
    if (!r.isSet(f)) continue;
    const v = r.get(f);
    if (f.name === "required") {
      if (v === true) out.push("required");
    } else if (f.oneof?.name === "type" && f.fieldKind === "message") {
      out.push(...typedRulesText(v as ReflectMessage));
    } else if (f.name === "cel") {
      for (const rule of plain(f, v) as { expression?: string; message?: string }[]) {
        out.push(`CEL ${code(rule.expression ?? "")}${rule.message ? ` (${rule.message})` : ""}`);
      }
    } else if (f.name === "cel_expression") {
      for (const e of plain(f, v) as string[]) out.push(`CEL ${code(e)}`);
    } else {
      out.push(`${f.name} ${code(JSON.stringify(plain(f, v)))}`);
    }
  }
  return out;
}

/**
 * A field's protovalidate rules in words: "1–63 chars", "≤ 16 MiB", "each: pattern `…`".
 * @internal
 */
export function rulesInWords(rules: FieldRules): string[] {
  return fieldRulesText(reflect(FieldRulesSchema, rules));
}

/** A field's constraints as the gateway enforces them, or "" when it has none. */
function constraints(f: DescField): string {
  return hasOption(f, fieldRules) ? escapeCell(rulesInWords(getOption(f, fieldRules)).join(", ")) : "";
}

// ---- the document -------------------------------------------------------------------------

function methodRow(m: DescService["methods"][number], documented: ReadonlySet<string>): string {
  const stream = (streams: boolean, t: DescMessage): string => `${streams ? "stream " : ""}${typeRef(t, documented)}`;
  const clientStreams = m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming";
  const serverStreams = m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming";
  const kind = m.methodKind === "unary" ? "" : `**${m.methodKind.replace("_", " ")}.** `;
  const desc = commentOf(m);
  return `| ${code(m.name)} | ${stream(clientStreams, m.input)} → ${stream(serverStreams, m.output)} | ${kind}${cell(desc)} |`;
}

function service(svc: DescService, documented: ReadonlySet<string>): string {
  const lines = [`### ${svc.name}`, ""];
  const c = commentOf(svc);
  if (c.length > 0) lines.push(block(c), "");
  lines.push(`Path: ${code(`/${svc.typeName}/<RPC>`)}.`, "");
  lines.push("| RPC | Request → Response | Description |", "| --- | --- | --- |");
  for (const m of svc.methods) lines.push(methodRow(m, documented));
  return lines.join("\n");
}

/** For each message, the RPCs that take or return it: "Request of `KernelService.Deploy`." */
function rpcUses(services: readonly DescService[]): Map<string, string[]> {
  const uses = new Map<string, { request: string[]; response: string[] }>();
  const at = (t: string) => uses.get(t) ?? uses.set(t, { request: [], response: [] }).get(t);
  for (const s of services) {
    for (const m of s.methods) {
      const link = `[${code(`${s.name}.${m.name}`)}](#${anchor(s.name)})`;
      const bidi = m.methodKind === "bidi_streaming";
      at(m.input.typeName)?.request.push(bidi || m.methodKind === "client_streaming" ? `${link} (streamed)` : link);
      at(m.output.typeName)?.response.push(bidi || m.methodKind === "server_streaming" ? `${link} (streamed)` : link);
    }
  }
  const out = new Map<string, string[]>();
  for (const [t, u] of uses) {
    out.set(t, [
      ...(u.request.length > 0 ? [`Request of ${u.request.join(", ")}.`] : []),
      ...(u.response.length > 0 ? [`Response of ${u.response.join(", ")}.`] : []),
    ]);
  }
  return out;
}

function messageDoc(m: DescMessage, documented: ReadonlySet<string>, uses: ReadonlyMap<string, string[]>): string {
  const lines = [`### ${localName(m)}`, ""];
  const used = uses.get(m.typeName) ?? [];
  if (used.length > 0) lines.push(used.join(" "), "");
  const c = commentOf(m);
  if (c.length > 0) lines.push(block(c), "");
  if (hasOption(m, messageRules))
    lines.push(`Constraints: ${code(JSON.stringify(toJson(MessageRulesSchema, getOption(m, messageRules))))}`, "");
  for (const o of m.oneofs) {
    if (hasOption(o, oneofRules))
      lines.push(`Oneof ${code(o.name)}: ${code(JSON.stringify(toJson(OneofRulesSchema, getOption(o, oneofRules))))}`, "");
  }
  if (m.fields.length === 0) {
    lines.push("No fields.");
    return lines.join("\n");
  }
  lines.push("| Field | # | Type | Description | Constraints |", "| --- | --- | --- | --- | --- |");
  for (const f of m.fields) {
    const json = f.jsonName === f.name ? "" : ` (JSON ${code(f.jsonName)})`;
    lines.push(`| ${code(f.name)}${json} | ${f.number} | ${fieldType(f, documented)} | ${cell(commentOf(f))} | ${constraints(f)} |`);
  }
  return lines.join("\n");
}

function enumDoc(e: DescEnum): string {
  const lines = [`### ${localName(e)}`, ""];
  const c = commentOf(e);
  if (c.length > 0) lines.push(block(c), "");
  lines.push("| Value | # | Description |", "| --- | --- | --- |");
  for (const v of e.values) lines.push(`| ${code(v.name)} | ${v.number} | ${cell(commentOf(v))} |`);
  return lines.join("\n");
}

/** Every message and enum of a file, nested ones after their parent, in the file's order. */
function typesOf(file: DescFile): { messages: DescMessage[]; enums: DescEnum[] } {
  const messages: DescMessage[] = [];
  const enums: DescEnum[] = [...file.enums];
  const walk = (m: DescMessage): void => {
    messages.push(m);
    enums.push(...m.nestedEnums);
    for (const n of m.nestedMessages) walk(n);
  };
  for (const m of file.messages) walk(m);
  return { messages, enums };
}

/** The reference's text. */
export function printReference(files: DescFile[] = buildSchema()): string {
  const all = files.map((f) => ({ file: f, ...typesOf(f) }));
  const documented = new Set(all.flatMap((x) => [...x.messages, ...x.enums].map((d) => d.typeName)));
  const parts = [
    "# Network API reference",
    "",
    "<!-- Generated by scripts/api-reference.ts from proto/solo (npm run proto): do not edit. -->",
    "",
    `Generated from the comments and protovalidate rules of ${files.map((f) => `[\`proto/${f.proto.name}\`](../proto/${f.proto.name})`).join(", ")}.`,
    "How to connect, authenticate and read errors is in [api.md](api.md#the-network-api-the-gateway).",
    "",
    "Field names are as in the schema; Connect JSON spells them in lowerCamelCase (the JSON name is",
    "given where it differs). Constraints are the protovalidate rules the gateway enforces before the",
    "kernel sees a request: a request that breaks one is answered `invalid_argument` naming the field.",
    "Lengths in chars count Unicode code points; sizes count UTF-8 bytes.",
  ];
  for (const { file } of all) {
    const intro = paragraphs(getSyntaxComments(file).leading);
    if (intro.length > 0) parts.push("", block(intro));
  }
  const services = files.flatMap((f) => f.services);
  if (services.length > 0) parts.push("", "## Services", ...services.flatMap((s) => ["", service(s, documented)]));
  const messages = all.flatMap((x) => x.messages);
  const uses = rpcUses(services);
  if (messages.length > 0) parts.push("", "## Messages", ...messages.flatMap((m) => ["", messageDoc(m, documented, uses)]));
  const enums = all.flatMap((x) => x.enums);
  if (enums.length > 0) parts.push("", "## Enums", ...enums.flatMap((e) => ["", enumDoc(e)]));
  return `${parts.join("\n")}\n`;
}

if (import.meta.main) {
  writeFileSync(new URL("../docs/api-reference.md", import.meta.url), printReference());
}
