export * from "./ledger-check.ts";
export * from "./mempool.ts";
export * from "./signatures.ts";
export * from "./tx-info.ts";
