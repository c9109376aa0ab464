import { isUtf8 } from "node:buffer";
import { promisify } from "node:util";
import { brotliDecompress, gunzip } from "node:zlib";
import { type DescField, type DescMessage, fromBinary, fromJsonString, ScalarType } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, type ConnectRouter, createContextKey, createContextValues } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { SoloError } from "../lib/errors/errors.ts";

/** A request body found unreadable before connect-es parsed it: the edge refuses the call with it. */
export const BODY_ERROR = createContextKey<SoloError | undefined>(undefined, { description: "solo body error" });

const HINT =
  "send the message encoded by a protobuf library (binary), or as JSON (content-type application/json); see proto/solo/v1/solo.proto";

/**
 * Checks every request body before connect-es parses it, so that what cannot be read is
 * `invalid_argument` naming the field on every protocol: invalid UTF-8 in a JSON body (which
 * connect-es would read as U+FFFD and accept) and a binary body that does not parse (which it
 * reports as `internal`). A bad body is swapped for an empty message and its error put in the
 * call's context, where the edge interceptor reports it in the caller's protocol; a good one is
 * passed on byte for byte.
 */
export function checkBodies(router: ConnectRouter, readMaxBytes: number): void {
  const handlers = router.handlers as UniversalHandler[];
  for (let i = 0; i < handlers.length; i++) handlers[i] = checked(handlers[i] as UniversalHandler, readMaxBytes);
}

interface Framing {
  readonly json: boolean;
  /** Enveloped (gRPC, gRPC-Web, Connect streaming) or one bare message (Connect unary). */
  readonly framed: boolean;
  /** The header naming the body's compression. */
  readonly encodingHeader: string;
}

function framingOf(contentType: string): Framing | undefined {
  const ct = contentType.split(";")[0]?.trim().toLowerCase() ?? "";
  switch (ct) {
    case "application/json":
      return { json: true, framed: false, encodingHeader: "content-encoding" };
    case "application/proto":
      return { json: false, framed: false, encodingHeader: "content-encoding" };
    case "application/connect+json":
      return { json: true, framed: true, encodingHeader: "connect-content-encoding" };
    case "application/connect+proto":
      return { json: false, framed: true, encodingHeader: "connect-content-encoding" };
    case "application/grpc":
    case "application/grpc+proto":
    case "application/grpc-web":
    case "application/grpc-web+proto":
      return { json: false, framed: true, encodingHeader: "grpc-encoding" };
    case "application/grpc+json":
    case "application/grpc-web+json":
      return { json: true, framed: true, encodingHeader: "grpc-encoding" };
    default:
      return undefined;
  }
}

function checked(handler: UniversalHandler, readMaxBytes: number): UniversalHandler {
  const input = handler.method.input;
  const fn = async (req: UniversalServerRequest) => {
    const framing = framingOf(req.header.get("content-type") ?? "");
    const body = req.body;
    if (!framing || body === null || typeof body !== "object" || !(Symbol.asyncIterator in body)) return handler(req);
    let read: { bytes: Buffer; rest?: AsyncIterator<Uint8Array> };
    try {
      read = await readUpTo(body as AsyncIterable<Uint8Array>, readMaxBytes + 5);
    } catch {
      // The client went away (or the edge reset the request) while its body arrived: nobody
      // to answer, and nothing to log (connect-node ignores aborted calls).
      throw new ConnectError("the request ended before its body did", Code.Aborted);
    }
    const { bytes, rest } = read;
    if (rest) return handler({ ...req, body: replay(bytes, rest) });
    const error = await check(input, bytes, framing, req.header.get(framing.encodingHeader), readMaxBytes);
    if (!error) return handler({ ...req, body: replay(bytes) });
    const contextValues = req.contextValues ?? createContextValues();
    contextValues.set(BODY_ERROR, error);
    const header = new Headers(req.header);
    header.delete(framing.encodingHeader);
    const empty = framing.json ? Buffer.from("{}") : Buffer.alloc(0);
    const replacement = framing.framed ? envelope(0, empty) : empty;
    header.set("content-length", String(replacement.length));
    return handler({ ...req, header, body: replay(replacement), contextValues });
  };
  return Object.assign(fn, {
    protocolNames: handler.protocolNames,
    service: handler.service,
    method: handler.method,
    requestPath: handler.requestPath,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}

/**
 * The body's problem, or undefined when it reads well (or is left for connect-es to refuse).
 * Every Solo method takes one request message: only the first envelope is read (connect-es
 * refuses a second one), decompressed off the event loop and to at most `readMaxBytes`.
 */
async function check(
  input: DescMessage,
  body: Buffer,
  framing: Framing,
  encoding: string | null,
  readMaxBytes: number,
): Promise<SoloError | undefined> {
  let message: Buffer | SoloError | undefined;
  if (!framing.framed) {
    message = await decompress(body, encoding, readMaxBytes);
  } else {
    if (body.length < 5) return undefined;
    const flags = body[0] as number;
    const length = body.readUInt32BE(1);
    if (5 + length > body.length) return undefined;
    const data = body.subarray(5, 5 + length);
    message = flags & 1 ? await decompress(data, encoding, readMaxBytes) : data;
  }
  if (!message) return undefined;
  if (message instanceof SoloError) return message;
  return framing.json ? checkJson(input, message) : checkBinary(input, message);
}

const gunzipAsync = promisify(gunzip);
const brotliAsync = promisify(brotliDecompress);

// Compression connect-es reads. An unknown encoding, and a body that decompresses to more than
// it may (a bomb), are left to connect-es to refuse (unimplemented, resource_exhausted); a stream
// that is corrupt or cut short is the caller's error, said here (connect-es would say internal).
async function decompress(data: Buffer, encoding: string | null, readMaxBytes: number): Promise<Buffer | SoloError | undefined> {
  const e = (encoding ?? "identity").trim().toLowerCase();
  try {
    if (e === "identity") return data;
    if (e === "gzip") return await gunzipAsync(data, { maxOutputLength: readMaxBytes });
    if (e === "br") return await brotliAsync(data, { maxOutputLength: readMaxBytes });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") return undefined;
    return new SoloError(
      "SOLO_ERR_REQUEST_INVALID",
      `the request body's ${e} compression is corrupt or cut short: ${(err as Error).message}`,
      {
        field: "body",
        encoding: e,
        hint: "send the whole compressed message, or send it uncompressed",
      },
    );
  }
  return undefined;
}

function checkJson(input: DescMessage, m: Buffer): SoloError | undefined {
  if (isUtf8(m)) {
    const text = m.toString("utf8");
    try {
      fromJsonString(input, text, { ignoreUnknownFields: false });
    } catch (err) {
      return jsonProblem(input, (err as Error).message);
    }
    // An escaped lone surrogate ("\udfff") is valid JSON but no Unicode text: no UTF-8 can hold it.
    if (!/\\u[dD][89a-fA-F]/.test(text)) return undefined;
    const field = stringPath(text, (v) => !v.isWellFormed());
    if (field === undefined) return undefined;
    return new SoloError("SOLO_ERR_REQUEST_INVALID", `${field}: a string holds a lone surrogate (an unpaired \\ud800-\\udfff escape)`, {
      field,
      message: input.typeName,
      hint: "escape characters outside the BMP as a surrogate pair, or send them as UTF-8",
    });
  }
  const field = stringPath(new TextDecoder().decode(m), (v) => v.includes("\uFFFD"));
  return new SoloError(
    "SOLO_ERR_REQUEST_INVALID",
    `${field ? `${field}: ` : ""}the JSON request body is not valid UTF-8${field ? "" : ` (byte ${firstInvalidUtf8(m)})`}`,
    {
      ...(field ? { field } : {}),
      message: input.typeName,
      hint: "encode the request as UTF-8; binary data goes in a bytes field (base64) or a string you encode",
    },
  );
}

/** protobuf-es's JSON error in Solo's words, naming the field where it can. */
function jsonProblem(input: DescMessage, message: string): SoloError {
  const unknown = /key "(.{0,200}?)" is unknown/.exec(message)?.[1];
  const field = unknown ?? /cannot decode field (?:[\w.]+\.)?(\w+) from JSON/.exec(message)?.[1];
  return new SoloError("SOLO_ERR_REQUEST_INVALID", `the JSON request is not a valid ${input.typeName}: ${message.slice(0, 500)}`, {
    ...(field !== undefined ? { field } : {}),
    message: input.typeName,
    hint:
      unknown !== undefined
        ? `${input.typeName} has no field ${JSON.stringify(unknown)}: check its spelling against proto/solo/v1/solo.proto (fields this server does not know are refused, not ignored)`
        : "see proto/solo/v1/solo.proto for each field's type; numbers must be finite (JSON has no NaN or Infinity)",
  });
}

// Where in the parsed JSON the first string (key or value) that fails `test` sits.
function stringPath(text: string, test: (s: string) => boolean): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  const walk = (v: unknown, path: string, depth: number): string | undefined => {
    // Deeper than protobuf reads anyway; said to be here rather than passed unexamined.
    if (depth > 200) return path;
    if (typeof v === "string") return test(v) ? path : undefined;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const found = walk(v[i], `${path}[${i}]`, depth + 1);
        if (found) return found;
      }
      return undefined;
    }
    if (v !== null && typeof v === "object") {
      for (const [k, x] of Object.entries(v)) {
        const p = path === "" ? k : `${path}.${k}`;
        if (test(k)) return p;
        const found = walk(x, p, depth + 1);
        if (found) return found;
      }
    }
    return undefined;
  };
  return walk(doc, "", 0);
}

/** The offset of the first byte that does not start a valid UTF-8 sequence. */
function firstInvalidUtf8(m: Uint8Array): number {
  let i = 0;
  while (i < m.length) {
    const b = m[i] as number;
    const n = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (n === 0 || !isUtf8(m.subarray(i, i + n))) return i;
    i += n;
  }
  return m.length;
}

function checkBinary(input: DescMessage, m: Buffer): SoloError | undefined {
  try {
    fromBinary(input, m);
    return undefined;
  } catch (err) {
    const where = locate(input, m, "", 0);
    const reason = where?.problem ?? (err as Error).message;
    return new SoloError(
      "SOLO_ERR_REQUEST_INVALID",
      `${where?.field ? `${where.field}: ` : ""}the binary request body is not a valid ${input.typeName}: ${reason}`,
      { ...(where?.field ? { field: where.field } : {}), message: input.typeName, hint: HINT },
    );
  }
}

/** Walks the wire format along the schema to find the field a parse failure is in. */
function locate(desc: DescMessage, bytes: Uint8Array, path: string, depth: number): { field: string; problem: string } | undefined {
  if (depth > 100) return { field: path, problem: "nested too deeply" };
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    let no: number;
    let wire: WireType;
    try {
      [no, wire] = reader.tag();
    } catch (err) {
      return { field: path, problem: `${(err as Error).message} at byte ${reader.pos}` };
    }
    const field = desc.fields.find((f) => f.number === no);
    const name = field ? (path === "" ? field.name : `${path}.${field.name}`) : path;
    if (!field || wire !== WireType.LengthDelimited) {
      try {
        reader.skip(wire, no);
      } catch (err) {
        return { field: name, problem: (err as Error).message };
      }
      continue;
    }
    let value: Uint8Array;
    try {
      value = reader.bytes();
    } catch (err) {
      return { field: name, problem: (err as Error).message };
    }
    const found = inField(field, value, name, depth);
    if (found) return found;
  }
  return undefined;
}

function inField(field: DescField, value: Uint8Array, name: string, depth: number): { field: string; problem: string } | undefined {
  const utf8 = (): { field: string; problem: string } | undefined =>
    isUtf8(value) ? undefined : { field: name, problem: "a string that is not valid UTF-8" };
  switch (field.fieldKind) {
    case "scalar":
      return field.scalar === ScalarType.STRING ? utf8() : undefined;
    case "list":
      if (field.listKind === "message") return locate(field.message, value, name, depth + 1);
      return field.listKind === "scalar" && field.scalar === ScalarType.STRING ? utf8() : undefined;
    case "message":
      return locate(field.message, value, name, depth + 1);
    case "map": {
      // A map entry: key (1) and value (2).
      const entry = new BinaryReader(value);
      while (entry.pos < entry.len) {
        let no: number;
        let wire: WireType;
        try {
          [no, wire] = entry.tag();
          if (wire !== WireType.LengthDelimited) {
            entry.skip(wire, no);
            continue;
          }
          const part = entry.bytes();
          if (no === 1 && field.mapKey === ScalarType.STRING && !isUtf8(part))
            return { field: name, problem: "a map key that is not valid UTF-8" };
          if (no === 2 && field.mapKind === "message") {
            const found = locate(field.message, part, `${name}[]`, depth + 1);
            if (found) return found;
          }
          if (no === 2 && field.mapKind === "scalar" && field.scalar === ScalarType.STRING && !isUtf8(part)) {
            return { field: `${name}[]`, problem: "a string that is not valid UTF-8" };
          }
        } catch (err) {
          return { field: name, problem: (err as Error).message };
        }
      }
      return undefined;
    }
    default:
      return undefined;
  }
}

/** One gRPC / Connect-streaming envelope: a flags byte, the length, the message. */
export function envelope(flags: number, message: Uint8Array): Buffer {
  const h = Buffer.alloc(5);
  h[0] = flags;
  h.writeUInt32BE(message.length, 1);
  return Buffer.concat([h, message]);
}

async function readUpTo(body: AsyncIterable<Uint8Array>, max: number): Promise<{ bytes: Buffer; rest?: AsyncIterator<Uint8Array> }> {
  const it = body[Symbol.asyncIterator]();
  const chunks: Uint8Array[] = [];
  let size = 0;
  // Most bodies come in one chunk: no copy then.
  const whole = (): Buffer => {
    const [only] = chunks;
    return chunks.length === 1 && only ? Buffer.from(only.buffer, only.byteOffset, only.byteLength) : Buffer.concat(chunks);
  };
  for (;;) {
    const r = await it.next();
    if (r.done) return { bytes: whole() };
    chunks.push(r.value);
    size += r.value.byteLength;
    // Too big to check: connect-es refuses it by its size.
    if (size > max) return { bytes: whole(), rest: it };
  }
}

async function* replay(bytes: Uint8Array, rest?: AsyncIterator<Uint8Array>): AsyncIterable<Uint8Array> {
  if (bytes.byteLength > 0) yield bytes;
  if (!rest) return;
  for (;;) {
    const r = await rest.next();
    if (r.done) return;
    yield r.value;
  }
}
