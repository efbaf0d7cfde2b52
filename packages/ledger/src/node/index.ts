export * from "../consensus/libp2p-transport.ts";
export * from "../mempool/index.ts";
export * from "./ledger-app.ts";
export * from "./node.ts";
export * from "./tx-gossip.ts";
