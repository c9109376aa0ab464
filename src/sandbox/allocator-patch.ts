/**
 * Gives QuickJS-ng a real memory limit per runtime. This WebAssembly build cannot size its
 * allocations (`malloc_usable_size` is compiled as `return 0`), so QuickJS counted 8 bytes per
 * allocation and its limit refused nothing but single allocations over it.
 *
 * The patch appends four functions to the module and a table slot for each:
 *
 * - `usable(ptr)` reads an allocation's size from dlmalloc's chunk header, so QuickJS's own
 *   accounting (`malloc_size`) counts the bytes a runtime really holds: strings built by
 *   concatenation, closures and bytecode included;
 * - `malloc`, `calloc` and `realloc` wrappers that check a runtime's limit before QuickJS's own
 *   allocator runs, and count, in a control block the host reads, each allocation they refused
 *   (the runtime is over its limit) and each one the allocator could not satisfy (the tenant's
 *   linear memory is at its maximum). Those counters are the host's evidence of a memory breach:
 *   a service cannot write them, whatever error it throws.
 *
 * A runtime opts in through `malloc_state.opaque`, which QuickJS hands to its allocator functions:
 * it points at the runtime's control block. Only appending, so no existing index moves.
 * @internal
 */

const TYPE = 1;
const IMPORT = 2;
const FUNCTION = 3;
const TABLE = 4;
const ELEMENT = 9;
const CODE = 10;

/** Table slots (C function pointers) of QuickJS's default allocator functions, read from a runtime. */
export interface AllocatorSlots {
  readonly calloc: number;
  readonly malloc: number;
  readonly realloc: number;
}

/** The patched module and the table slots of the functions it added. */
export interface PatchedAllocator {
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly slots: { readonly calloc: number; readonly malloc: number; readonly realloc: number; readonly usable: number };
}

/**
 * The control block a runtime's `malloc_state.opaque` points at: four little-endian u32s.
 * `limit` and `sizeAddress` are written by the host; the counters by the wrappers.
 */
export const CONTROL = { limit: 0, refused: 4, sizeAddress: 8, exhausted: 12, bytes: 16 } as const;

interface Section {
  readonly id: number;
  readonly body: Uint8Array;
}

// Opcodes used below.
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const I32_CONST = 0x41;
const I32_LOAD = 0x28;
const I32_STORE = 0x36;
const I32_ADD = 0x6a;
const I32_SUB = 0x6b;
const I32_AND = 0x71;
const I32_EQZ = 0x45;
const I64_EXTEND_U = 0xad;
const I64_ADD = 0x7c;
const I64_SUB = 0x7d;
const I64_MUL = 0x7e;
const I64_GT_S = 0x55;
const IF = 0x04;
const ELSE = 0x05;
const END = 0x0b;
const RETURN = 0x0f;
const CALL = 0x10;
const VOID = 0x40;
const I32 = 0x7f;

const load = (offset: number): number[] => [I32_LOAD, 0x02, ...u32(offset)];
const store = (offset: number): number[] => [I32_STORE, 0x02, ...u32(offset)];
const get = (i: number): number[] => [LOCAL_GET, i];

// usable(ptr): ptr ? (*(u32 *)(ptr - 4) & ~7) - 4 : 0. dlmalloc (32-bit, no footers) keeps a
// chunk's size, with three flag bits, in the word before the payload; the payload is that less
// the 4-byte head.
function usableBody(): number[] {
  return [
    ...get(0),
    IF,
    I32,
    ...get(0),
    I32_CONST,
    4,
    I32_SUB,
    ...load(0),
    I32_CONST,
    0x78,
    I32_AND,
    I32_CONST,
    4,
    I32_SUB,
    ELSE,
    I32_CONST,
    0,
    END,
  ];
}

// Adds one to the control block's counter at `offset`.
function bump(offset: number): number[] {
  return [...get(0), ...get(0), ...load(offset), I32_CONST, 1, I32_ADD, ...store(offset)];
}

// if (opaque && (i64)used + <grow> > limit) { refused++; return 0 } where <grow> leaves an i64.
function refuseOver(grow: number[]): number[] {
  return [
    ...get(0),
    IF,
    VOID,
    ...get(0),
    ...load(CONTROL.sizeAddress),
    ...load(0),
    I64_EXTEND_U,
    ...grow,
    I64_ADD,
    ...get(0),
    ...load(CONTROL.limit),
    I64_EXTEND_U,
    I64_GT_S,
    IF,
    VOID,
    ...bump(CONTROL.refused),
    I32_CONST,
    0,
    RETURN,
    END,
    END,
  ];
}

// result = <call>; if (opaque && !result && <asked>) exhausted++; return result. `result` is local r.
function countExhausted(call: number[], r: number, asked: number[]): number[] {
  return [
    ...call,
    LOCAL_SET,
    r,
    ...get(0),
    IF,
    VOID,
    ...get(r),
    I32_EQZ,
    IF,
    VOID,
    ...asked,
    IF,
    VOID,
    ...bump(CONTROL.exhausted),
    END,
    END,
    END,
    ...get(r),
  ];
}

/**
 * Applies the patch to QuickJS-ng's WebAssembly binary, given the table slots of its default
 * allocator functions. Throws if the binary is not shaped as expected.
 */
export function patchAllocator(wasm: Uint8Array, defaults: AllocatorSlots): PatchedAllocator {
  const sections = readSections(wasm);
  const find = (id: number): Section => {
    const s = sections.find((x) => x.id === id);
    if (!s) throw new Error(`the engine's WebAssembly has no section ${id}`);
    return s;
  };

  // The function types the new functions need, added where the module lacks them.
  const types = new Reader(find(TYPE).body);
  const typeCount = types.u32();
  const known: string[] = [];
  for (let i = 0; i < typeCount; i++) {
    if (types.byte() !== 0x60) throw new Error("unexpected type form");
    const params = [...types.bytes(types.u32())];
    const results = [...types.bytes(types.u32())];
    known.push(`${params.join(",")}>${results.join(",")}`);
  }
  const addedTypes: number[][] = [];
  const typeOf = (params: number): number => {
    const key = `${new Array(params).fill(I32).join(",")}>${I32}`;
    const i = known.indexOf(key);
    if (i >= 0) return i;
    known.push(key);
    addedTypes.push([0x60, params, ...new Array<number>(params).fill(I32), 1, I32]);
    return known.length - 1;
  };
  const t1 = typeOf(1);
  const t2 = typeOf(2);
  const t3 = typeOf(3);

  const imports = new Reader(find(IMPORT).body);
  let importedFunctions = 0;
  const importCount = imports.u32();
  for (let i = 0; i < importCount; i++) {
    imports.bytes(imports.u32());
    imports.bytes(imports.u32());
    const kind = imports.byte();
    if (kind === 0) {
      importedFunctions++;
      imports.u32();
    } else if (kind === 1) {
      imports.byte();
      limits(imports);
    } else if (kind === 2) limits(imports);
    else if (kind === 3) imports.bytes(2);
    else throw new Error(`unexpected import kind ${kind}`);
  }
  const functions = new Reader(find(FUNCTION).body);
  const functionCount = functions.u32();
  const first = importedFunctions + functionCount;

  // One funcref table without a maximum, filled by one active segment: the slots of the default
  // allocator functions tell their function indices.
  const table = new Reader(find(TABLE).body);
  if (table.u32() !== 1 || table.byte() !== 0x70 || table.byte() !== 0x00) throw new Error("unexpected table shape");
  const slot = table.u32();
  const elements = new Reader(find(ELEMENT).body);
  const elementCount = elements.u32();
  if (elements.u32() !== 0 || elements.byte() !== I32_CONST) throw new Error("unexpected element segment");
  const offset = elements.s32();
  if (elements.byte() !== END) throw new Error("unexpected element segment offset");
  const entries: number[] = [];
  const n = elements.u32();
  for (let i = 0; i < n; i++) entries.push(elements.u32());
  const fn = (s: number): number => {
    const f = entries[s - offset];
    if (f === undefined) throw new Error(`no function in table slot ${s}`);
    return f;
  };
  const usable = first;
  const bodies: Array<{ type: number; locals: number[]; code: number[] }> = [
    { type: t1, locals: [], code: usableBody() },
    // malloc(opaque, size)
    {
      type: t2,
      locals: [1, 1, I32],
      code: [
        ...refuseOver([...get(1), I64_EXTEND_U]),
        ...countExhausted([...get(0), ...get(1), CALL, ...u32(fn(defaults.malloc))], 2, [I32_CONST, 1]),
      ],
    },
    // calloc(opaque, count, size)
    {
      type: t3,
      locals: [1, 1, I32],
      code: [
        ...refuseOver([...get(1), I64_EXTEND_U, ...get(2), I64_EXTEND_U, I64_MUL]),
        ...countExhausted([...get(0), ...get(1), ...get(2), CALL, ...u32(fn(defaults.calloc))], 3, [I32_CONST, 1]),
      ],
    },
    // realloc(opaque, ptr, size): only growth counts against the limit
    {
      type: t3,
      locals: [1, 1, I32],
      code: [
        ...refuseOver([...get(2), I64_EXTEND_U, ...get(1), CALL, ...u32(usable), I64_EXTEND_U, I64_SUB]),
        ...countExhausted([...get(0), ...get(1), ...get(2), CALL, ...u32(fn(defaults.realloc))], 3, get(2)),
      ],
    },
  ];
  const code = new Reader(find(CODE).body);
  const codeCount = code.u32();
  if (codeCount !== functionCount) throw new Error("function and code counts differ");
  const encoded = bodies.map((b) => {
    const body = [...(b.locals.length === 0 ? [0] : b.locals), ...b.code, END];
    return [...u32(body.length), ...body];
  });
  const segment = [0x00, I32_CONST, ...s32(slot), END, ...u32(bodies.length), ...bodies.flatMap((_, i) => u32(first + i))];
  const replaced = new Map<number, Uint8Array>([
    [TYPE, withCount(find(TYPE).body, typeCount + addedTypes.length, addedTypes.flat())],
    [
      FUNCTION,
      withCount(
        find(FUNCTION).body,
        functionCount + bodies.length,
        bodies.flatMap((b) => u32(b.type)),
      ),
    ],
    [TABLE, Uint8Array.from([0x01, 0x70, 0x00, ...u32(slot + bodies.length)])],
    [ELEMENT, withCount(find(ELEMENT).body, elementCount + 1, segment)],
    [CODE, withCount(find(CODE).body, codeCount + bodies.length, encoded.flat())],
  ]);
  const parts: number[] = [...wasm.subarray(0, 8)];
  for (const s of sections) {
    const body = replaced.get(s.id) ?? s.body;
    parts.push(s.id, ...u32(body.length));
    for (const b of body) parts.push(b);
  }
  return { bytes: Uint8Array.from(parts), slots: { usable: slot, malloc: slot + 1, calloc: slot + 2, realloc: slot + 3 } };
}

function readSections(wasm: Uint8Array): Section[] {
  const magic = [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0];
  if (magic.some((b, i) => wasm[i] !== b)) throw new Error("not a WebAssembly 1 module");
  const r = new Reader(wasm, 8);
  const out: Section[] = [];
  while (!r.done()) {
    const id = r.byte();
    out.push({ id, body: r.bytes(r.u32()) });
  }
  return out;
}

// A vector section with its count replaced and `extra` appended.
function withCount(body: Uint8Array, count: number, extra: readonly number[]): Uint8Array {
  const r = new Reader(body);
  r.u32();
  const rest = body.subarray(r.pos);
  const head = u32(count);
  const out = new Uint8Array(head.length + rest.length + extra.length);
  out.set(head, 0);
  out.set(rest, head.length);
  out.set(extra, head.length + rest.length);
  return out;
}

function limits(r: Reader): void {
  const flags = r.byte();
  r.u32();
  if (flags & 1) r.u32();
}

class Reader {
  pos: number;
  private readonly b: Uint8Array;
  constructor(b: Uint8Array, pos = 0) {
    this.b = b;
    this.pos = pos;
  }
  done(): boolean {
    return this.pos >= this.b.length;
  }
  byte(): number {
    const v = this.b[this.pos++];
    if (v === undefined) throw new Error("unexpected end of the engine's WebAssembly");
    return v;
  }
  bytes(n: number): Uint8Array {
    if (this.pos + n > this.b.length) throw new Error("unexpected end of the engine's WebAssembly");
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const x = this.byte();
      result += (x & 0x7f) * 2 ** shift;
      if ((x & 0x80) === 0) return result;
      shift += 7;
    }
  }
  s32(): number {
    let result = 0;
    let shift = 0;
    let x: number;
    do {
      x = this.byte();
      result |= (x & 0x7f) << shift;
      shift += 7;
    } while (x & 0x80);
    return shift < 32 && x & 0x40 ? result | (-1 << shift) : result;
  }
}

function u32(n: number): number[] {
  const out: number[] = [];
  do {
    let x = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) x |= 0x80;
    out.push(x);
  } while (n !== 0);
  return out;
}

function s32(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const x = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (x & 0x40) === 0) || (n === -1 && (x & 0x40) !== 0)) {
      out.push(x);
      return out;
    }
    out.push(x | 0x80);
  }
}
