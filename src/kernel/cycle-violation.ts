// Deliberate import cycle, to show the linter refuses it (reverted in the next commit).
import { KernelImpl } from "./kernel.ts";

export const facade = KernelImpl;
