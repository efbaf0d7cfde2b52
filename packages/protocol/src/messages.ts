/** Schemas, types and codecs of every message the Deepshard network sends. */
export * from "./messages/blob.ts";
export * from "./messages/block.ts";
export {
  BASIS_POINTS,
  defineMessage,
  hashOf,
  type MessageCodec,
  PROTOCOL_VERSION,
  type Signed,
  signed,
  sortedBy,
  U64_MAX,
} from "./messages/common.ts";
export * from "./messages/signing.ts";
export * from "./messages/sync.ts";
export * from "./messages/tx.ts";
export * from "./messages/votes.ts";
