import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import variantModule from "@jitl/quickjs-ng-wasmfile-release-sync";
import { newQuickJSWASMModuleFromVariant, newVariant, type QuickJSSyncVariant, type QuickJSWASMModule } from "quickjs-emscripten-core";
import { type AllocatorSlots, CONTROL, type PatchedAllocator, patchAllocator } from "./allocator-patch.ts";

// The package's types are resolved through its CommonJS declaration even when Node loads its ES
// module, so TypeScript sees the module object where the runtime hands us the variant itself.
const baseVariant = variantModule as unknown as QuickJSSyncVariant;

const PAGE = 64 * 1024;
/** The engine's linear memory starts at 16 MiB (its declared minimum); no tenant can have less. */
export const ENGINE_MIN_BYTES = 256 * PAGE;

// QuickJS-ng's JSRuntime begins with its allocator functions (calloc, malloc, free, realloc,
// usable_size: five table slots) and then its malloc state (count, size, limit, opaque).
const RT_FUNCTIONS = 0;
const RT_MALLOC_SIZE = 24;
const RT_OPAQUE = 32;

/**
 * QuickJS-ng's WebAssembly, compiled once for the whole process with the allocator patch, and
 * where in its static data the default allocator functions are. Crosses `postMessage` to the
 * scheduler threads without recompiling.
 */
export interface EngineImage {
  readonly module: WebAssembly.Module;
  /** Address of QuickJS's static default allocator functions (`def_malloc_funcs`). */
  readonly functionsAddress: number;
  readonly slots: PatchedAllocator["slots"];
}

/** A tenant's instance of the engine, with its own linear memory capped at `capBytes`. */
export interface TenantEngine {
  readonly quickjs: QuickJSWASMModule;
  readonly memory: WebAssembly.Memory;
  /** The most linear memory this instance may ever hold, in bytes. */
  readonly capBytes: number;
  /** Host allocations in the instance refused because it was full (HostMemoryFull), since it was made. */
  readonly hostRefusals: () => number;
}

interface Emscripten {
  readonly HEAPU8: Uint8Array;
  _malloc: (bytes: number) => number;
  _free(ptr: number): void;
}

/**
 * The host could not allocate in a tenant's linear memory (it is at its maximum). Thrown instead of
 * letting emscripten's helpers copy a string to address 0, which they would otherwise do.
 * @internal
 */
export class HostMemoryFull extends Error {
  override readonly name = "HostMemoryFull";
}

let image: Promise<EngineImage> | undefined;

/**
 * Compiles QuickJS-ng's WebAssembly once per process, patched so that each runtime counts the
 * bytes it holds and has its limit checked at every allocation (see `allocator-patch.ts`), and
 * checks that the patch does what it must before any service runs on it.
 */
export function compileEngine(): Promise<EngineImage> {
  image ??= build();
  return image;
}

async function build(): Promise<EngineImage> {
  const path = fileURLToPath(import.meta.resolve("@jitl/quickjs-ng-wasmfile-release-sync/wasm"));
  const bytes = readFileSync(path);
  // The default allocator functions' table slots, and where QuickJS keeps them, from a runtime of
  // the unpatched engine.
  const plain = await newQuickJSWASMModuleFromVariant(newVariant(baseVariant, { wasmModule: new WebAssembly.Module(bytes) }));
  const rt = plain.newRuntime();
  const heap = new Uint32Array(emscripten(plain).HEAPU8.buffer);
  const rtAddress = runtimeAddress(rt);
  const functions = [...heap.subarray((rtAddress + RT_FUNCTIONS) >> 2, ((rtAddress + RT_FUNCTIONS) >> 2) + 5)];
  const found: number[] = [];
  for (let i = 0; i < rtAddress >> 2 && found.length < 2; i++) {
    if (functions.every((f, j) => heap[i + j] === f)) found.push(i * 4);
  }
  rt.dispose();
  const [functionsAddress] = found;
  if (found.length !== 1 || functionsAddress === undefined) {
    throw new Error(`the engine's default allocator functions were not found exactly once (${found.length} matches)`);
  }
  const [calloc, malloc, , realloc] = functions as [number, number, number, number, number];
  const defaults: AllocatorSlots = { calloc, malloc, realloc };
  const patched = patchAllocator(bytes, defaults);
  const result: EngineImage = { module: new WebAssembly.Module(patched.bytes), functionsAddress, slots: patched.slots };
  await selfTest(result);
  return result;
}

/** The maximum an instance made for `capBytes` gets: whole pages, at least the engine's minimum. */
export function instanceCapBytes(capBytes: number): number {
  return Math.max(ENGINE_MIN_BYTES, Math.floor(capBytes / PAGE) * PAGE);
}

/**
 * Instantiates the engine for one tenant: a fresh WebAssembly instance with its own linear memory,
 * so no service of another tenant can ever address these bytes, and with a maximum, so the
 * tenant's services together can never make it hold more than `capBytes`: past it, allocations
 * fail inside the engine.
 */
export async function instantiateEngine(
  img: EngineImage,
  capBytes: number,
  /** @internal For benchmarks only: `false` leaves QuickJS's allocator unpatched (no sizes, no limits). */
  accounting = true,
): Promise<TenantEngine> {
  const cap = instanceCapBytes(capBytes);
  const memory = new WebAssembly.Memory({ initial: ENGINE_MIN_BYTES / PAGE, maximum: cap / PAGE });
  const quickjs = await newQuickJSWASMModuleFromVariant(
    newVariant(baseVariant, {
      wasmMemory: memory,
      emscriptenModule: {
        instantiateWasm(imports: WebAssembly.Imports, done: (instance: WebAssembly.Instance) => void): WebAssembly.Exports {
          exactGrowth(imports, memory);
          const instance = new WebAssembly.Instance(img.module, imports);
          done(instance);
          return instance.exports;
        },
      },
    }),
  );
  // Every allocation the host makes in the instance (strings it passes in, through this code or
  // quickjs-emscripten's helpers) goes through the module's _malloc, whose result those helpers
  // never check: a full tenant would have them write the string from address 0 up.
  const em = emscripten(quickjs);
  const malloc = em._malloc.bind(em);
  let refusals = 0;
  em._malloc = (bytes: number): number => {
    const ptr = malloc(bytes);
    if (ptr !== 0) return ptr;
    refusals++;
    throw new HostMemoryFull(`the tenant's memory is full: the host could not allocate ${bytes} bytes`);
  };
  const hostRefusals = (): number => refusals;
  if (!accounting) return { quickjs, memory, capBytes: cap, hostRefusals };
  // Every runtime made from here on sizes its allocations and checks its limit.
  const heap = new Uint32Array(memory.buffer);
  const at = img.functionsAddress >> 2;
  heap[at] = img.slots.calloc;
  heap[at + 1] = img.slots.malloc;
  heap[at + 3] = img.slots.realloc;
  heap[at + 4] = img.slots.usable;
  return { quickjs, memory, capBytes: cap, hostRefusals };
}

/** Room a new service's runtime and context need in its tenant's instance, with a margin. */
const NEW_RUNTIME_BYTES = 512 * 1024;

/**
 * Throws HostMemoryFull unless the tenant's instance can still give a new runtime and context what
 * they need: QuickJS aborts (and takes the whole instance with it) when it runs out of memory half
 * way through making a context, so a full tenant is refused before it tries.
 */
export function ensureRoomForRuntime(engine: TenantEngine): void {
  const em = emscripten(engine.quickjs);
  em._free(em._malloc(NEW_RUNTIME_BYTES));
}

/**
 * One runtime's memory accounting in the engine: its limit, the bytes it holds, and the host's
 * evidence of a breach (allocations refused for its limit, allocations the tenant's full memory
 * could not satisfy). Reads are two or three loads from linear memory, cheap enough for every
 * message.
 * @internal
 */
export class RuntimeMemory {
  private readonly em: Emscripten;
  private readonly control: number;
  private readonly sizeAddress: number;
  private readonly memory: WebAssembly.Memory;
  private freed = false;

  constructor(quickjs: QuickJSWASMModule, runtime: unknown, limitBytes: number) {
    this.em = emscripten(quickjs);
    this.memory = (quickjs as unknown as { getWasmMemory(): WebAssembly.Memory }).getWasmMemory();
    const rt = runtimeAddress(runtime);
    if (rt === 0) throw new HostMemoryFull("the engine could not make a runtime: the tenant's memory is full");
    this.sizeAddress = rt + RT_MALLOC_SIZE;
    this.control = this.em._malloc(CONTROL.bytes);
    if (this.control === 0) throw new Error("the tenant's memory is full");
    const heap = this.heap();
    heap[(this.control + CONTROL.limit) >> 2] = limitBytes;
    heap[(this.control + CONTROL.refused) >> 2] = 0;
    heap[(this.control + CONTROL.sizeAddress) >> 2] = this.sizeAddress;
    heap[(this.control + CONTROL.exhausted) >> 2] = 0;
    heap[(rt + RT_OPAQUE) >> 2] = this.control;
  }

  /** Bytes the runtime holds now (its allocations' sizes, with 8 bytes of bookkeeping each). */
  bytes(): number {
    return this.heap()[this.sizeAddress >> 2] ?? 0;
  }

  /** Allocations refused because the runtime was at its limit, since it started. */
  refused(): number {
    return this.heap()[(this.control + CONTROL.refused) >> 2] ?? 0;
  }

  /** Allocations that failed because the tenant's linear memory was at its maximum, since it started. */
  exhausted(): number {
    return this.heap()[(this.control + CONTROL.exhausted) >> 2] ?? 0;
  }

  /** Frees the control block; the runtime must be freed first. */
  dispose(): void {
    if (this.freed) return;
    this.freed = true;
    this.em._free(this.control);
  }

  // The view is made again only when the memory has grown (its buffer is then a new one).
  private view: Uint32Array | undefined;
  private heap(): Uint32Array {
    const buffer = this.memory.buffer;
    if (this.view?.buffer !== buffer) this.view = new Uint32Array(buffer);
    return this.view;
  }
}

// Emscripten grows the heap by at least 5% at a time, so near the maximum it gives up while the
// bytes asked for would still fit. Its resize import (`a.k` in this pinned build: it takes the
// size the heap needs) is wrapped: when it fails and the size fits, the memory is grown to exactly
// that size, and emscripten's own resize then finds it large enough and refreshes its views.
function exactGrowth(imports: WebAssembly.Imports, memory: WebAssembly.Memory): void {
  const env = imports.a as Record<string, unknown> | undefined;
  const resize = env?.k;
  if (!env || typeof resize !== "function") throw new Error("the engine's resize import was not found");
  env.k = (needed: number): boolean => {
    if (resize(needed)) return true;
    const want = Math.ceil((needed >>> 0) / PAGE) - memory.buffer.byteLength / PAGE;
    if (want <= 0) return false;
    try {
      memory.grow(want);
    } catch {
      return false; // past the maximum: the allocation fails inside the engine
    }
    return resize(needed) === true;
  };
}

function emscripten(q: QuickJSWASMModule): Emscripten {
  return (q as unknown as { module: Emscripten }).module;
}

function runtimeAddress(runtime: unknown): number {
  return (runtime as { rt: { value: number } }).rt.value;
}

// The patch must count what a runtime holds and refuse past its limit, and the tenant's memory must
// fill up to its cap, or nothing built on them holds: checked once, on a throwaway instance,
// before any service runs.
async function selfTest(img: EngineImage): Promise<void> {
  // Just over the engine's minimum: the fill below must grow the memory, and no more than it needs.
  const engine = await instantiateEngine(img, ENGINE_MIN_BYTES + 1024 * 1024);
  const check = (what: string, ok: boolean): void => {
    if (!ok) throw new Error(`the engine's allocator patch does not hold: ${what}`);
  };
  const limited = engine.quickjs.newRuntime();
  const mem = new RuntimeMemory(engine.quickjs, limited, 4 * 1024 * 1024);
  const ctx = limited.newContext();
  const before = mem.bytes();
  ctx.evalCode("globalThis.s = 'a'.repeat(1 << 20) + 'b'.repeat(1 << 20); s.length").dispose();
  const held = mem.bytes() - before;
  check(`2 MiB of strings counted as ${held} bytes`, held >= 2 << 20 && held < 3 << 20);
  ctx.evalCode("'c'.repeat(8 << 20).length").dispose();
  check("an allocation past the runtime's limit was not refused", mem.refused() === 1 && mem.exhausted() === 0);
  ctx.dispose();
  limited.dispose();
  mem.dispose();
  const free = engine.quickjs.newRuntime();
  const fill = free.newContext();
  fill.evalCode("globalThis.k = []; try { for (;;) k.push('d'.repeat(60000) + k.length) } catch {} k.length").dispose();
  const grown = engine.memory.buffer.byteLength;
  check(`the memory grew to ${grown} of its ${engine.capBytes} bytes`, grown === engine.capBytes);
  fill.dispose();
  free.dispose();
}
