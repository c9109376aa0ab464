import pkg from "../../package.json" with { type: "json" };

/** Solo's version, as package.json gives it: what the CLI, the gateway's Health and MCP clients see. */
export const VERSION: string = pkg.version;
