/**
 * `solo mcp`: Solo's operations as MCP tools on stdin/stdout, through the gateway with the CLI's
 * credentials, or with `--embedded` over a kernel in this process.
 */
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { VERSION } from "../../lib/version.ts";
import { serveEmbedded } from "../../mcp/embedded.ts";
import { createMcpServer } from "../../mcp/server.ts";
import type { Cli } from "../command.ts";
import { connect, dataDirOf } from "../connection.ts";
import { exitCodeOf, printError } from "../errors.ts";

/** `solo mcp [--embedded]`: serves until stdin closes. */
export async function mcp(cli: Cli, o: { embedded?: boolean; database?: string }): Promise<void> {
  try {
    if (o.embedded) {
      const token = cli.options.token ?? process.env.SOLO_TOKEN;
      await serveEmbedded({
        dataDir: dataDirOf(cli.options.dataDir),
        ...(o.database ? { database: o.database } : {}),
        ...(token ? { token } : {}),
      });
      return;
    }
    const server = createMcpServer(connect(cli.options, "mcp"), VERSION);
    await server.connect(new StdioServerTransport());
  } catch (err) {
    // stdout belongs to the protocol: report on stderr only.
    printError(err, false);
    process.exitCode = exitCodeOf(err);
  }
}
