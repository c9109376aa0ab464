// The operations table: the embedding API, each operation defined once (how a token is admitted,
// what it does). kernel.ts binds it to the embedder, session.ts to a token.

export * as admin from "./admin.ts";
export * as events from "./events.ts";
export { type Gate, type HotOperation, type Operation, settled } from "./operation.ts";
export * as services from "./services.ts";
