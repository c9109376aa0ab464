import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import variantModule from "@jitl/quickjs-ng-wasmfile-release-sync";
import { newQuickJSWASMModuleFromVariant, newVariant, type QuickJSSyncVariant, type QuickJSWASMModule } from "quickjs-emscripten-core";

// The package's types are resolved through its CommonJS declaration even when Node loads its ES
// module, so TypeScript sees the module object where the runtime hands us the variant itself.
const baseVariant = variantModule as unknown as QuickJSSyncVariant;

/**
 * Compiles QuickJS-ng's WebAssembly once for the whole process. The compiled module is shared
 * with every scheduler thread (a `WebAssembly.Module` crosses `postMessage` without recompiling).
 */
export function compileEngine(): WebAssembly.Module {
  const path = fileURLToPath(import.meta.resolve("@jitl/quickjs-ng-wasmfile-release-sync/wasm"));
  return new WebAssembly.Module(readFileSync(path));
}

/**
 * Instantiates the engine for one tenant: a fresh WebAssembly instance with its own linear memory,
 * so no service of another tenant can ever address these bytes.
 */
export function instantiateEngine(compiled: WebAssembly.Module): Promise<QuickJSWASMModule> {
  return newQuickJSWASMModuleFromVariant(newVariant(baseVariant, { wasmModule: compiled }));
}
