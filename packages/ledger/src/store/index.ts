export * from "./db.ts";
export * from "./errors.ts";
export * from "./ledger-store.ts";
export * from "./vote-log.ts";
