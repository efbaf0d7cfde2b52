/** The libp2p host is a separate entry point, `@deepshard/protocol/host`, so that code which only
 * needs messages, keys or hashes does not load libp2p. */
export * from "./address.ts";
export * from "./bench.ts";
export * from "./codec.ts";
export * from "./errors.ts";
export * from "./hash.ts";
export * from "./keys.ts";
export * from "./keystore.ts";
export * from "./merkle.ts";
export * from "./messages.ts";
export * from "./peer.ts";
export * from "./schema.ts";
