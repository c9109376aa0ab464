import type { QuickJSContext, QuickJSHandle, QuickJSWASMModule } from "quickjs-emscripten-core";

// The parts of quickjs-emscripten's internals the hot path uses. They are not public API, so the
// dependency is pinned to an exact version; every test of the sandbox goes through this path.
interface Emscripten {
  readonly HEAPU8: Uint8Array;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  lengthBytesUTF8(s: string): number;
  stringToUTF8(s: string, ptr: number, max: number): void;
  UTF8ToString(ptr: number): string;
}

interface Ffi {
  QTS_NewString(ctx: number, chars: number): number;
  QTS_GetString(ctx: number, value: number): number;
  QTS_FreeCString(ctx: number, chars: number): void;
  QTS_FreeValuePointer(ctx: number, value: number): void;
  QTS_Call(ctx: number, fn: number, thisValue: number, argc: number, argv: number): number;
  QTS_ResolveException(ctx: number, maybeException: number): number;
}

interface ContextInternals {
  readonly ctx: { readonly value: number };
  readonly memory: { heapValueHandle(ptr: number): QuickJSHandle };
}

const SCRATCH_BYTES = 4096;

/**
 * Calls a guest function with three string arguments and reads its string result, talking to
 * the QuickJS FFI directly: the library's general `callFunction` allocates argument arrays and
 * lifetimes on every call, which dominated the cost of a message.
 * @internal
 */
export class FastCall {
  private readonly em: Emscripten;
  private readonly ffi: Ffi;
  private readonly ctxPtr: number;
  private readonly internals: ContextInternals;
  private readonly argv: number;
  private readonly scratch: number;
  private readonly undefinedPtr: number;
  private heap: ArrayBufferLike | undefined;
  private view: Int32Array<ArrayBufferLike> = new Int32Array(0);

  constructor(engine: QuickJSWASMModule, ctx: QuickJSContext) {
    this.em = (engine as unknown as { module: Emscripten }).module;
    this.ffi = engine.getFFI() as unknown as Ffi;
    this.internals = ctx as unknown as ContextInternals;
    this.ctxPtr = this.internals.ctx.value;
    this.undefinedPtr = ctx.undefined.value as unknown as number;
    this.argv = this.em._malloc(12);
    this.scratch = this.em._malloc(SCRATCH_BYTES);
  }

  /**
   * Calls `fn(op, a, b)`; returns the string result, a handle to the thrown error, or `null` when
   * the result could not be read out (the runtime had no memory left to make its C string).
   */
  call(fn: QuickJSHandle, op: QuickJSHandle, a: string, b: string): string | { error: QuickJSHandle } | null {
    const { em, ffi, ctxPtr } = this;
    const aPtr = this.newString(a);
    const bPtr = this.newString(b);
    // The heap's buffer is replaced when memory grows, so take the current one on every call.
    const heap = em.HEAPU8.buffer;
    if (heap !== this.heap) {
      this.heap = heap;
      this.view = new Int32Array(heap);
    }
    const base = this.argv >> 2;
    this.view[base] = op.value as unknown as number;
    this.view[base + 1] = aPtr;
    this.view[base + 2] = bPtr;
    const res = ffi.QTS_Call(ctxPtr, fn.value as unknown as number, this.undefinedPtr, 3, this.argv);
    ffi.QTS_FreeValuePointer(ctxPtr, aPtr);
    ffi.QTS_FreeValuePointer(ctxPtr, bPtr);
    const err = ffi.QTS_ResolveException(ctxPtr, res);
    if (err) {
      ffi.QTS_FreeValuePointer(ctxPtr, res);
      return { error: this.internals.memory.heapValueHandle(err) };
    }
    const chars = ffi.QTS_GetString(ctxPtr, res);
    if (chars === 0) {
      ffi.QTS_FreeValuePointer(ctxPtr, res);
      return null;
    }
    const out = em.UTF8ToString(chars);
    ffi.QTS_FreeCString(ctxPtr, chars);
    ffi.QTS_FreeValuePointer(ctxPtr, res);
    return out;
  }

  /** Frees the argument buffers. */
  dispose(): void {
    this.em._free(this.argv);
    this.em._free(this.scratch);
  }

  private newString(s: string): number {
    const { em } = this;
    if (s.length === 0 || s.length * 3 < SCRATCH_BYTES) {
      em.stringToUTF8(s, this.scratch, SCRATCH_BYTES);
      return this.ffi.QTS_NewString(this.ctxPtr, this.scratch);
    }
    const bytes = em.lengthBytesUTF8(s) + 1;
    const ptr = em._malloc(bytes);
    em.stringToUTF8(s, ptr, bytes);
    const value = this.ffi.QTS_NewString(this.ctxPtr, ptr);
    em._free(ptr);
    return value;
  }
}
