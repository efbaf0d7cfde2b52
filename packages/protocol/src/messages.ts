/** Schemas, types and codecs of every message the Deepshard network sends. */
export * from "./messages/blob.ts";
export * from "./messages/block.ts";
export {
  amount as amountSchema,
  BASIS_POINTS,
  basisPoints as basisPointsSchema,
  chainId as chainIdSchema,
  defineMessage,
  hash32 as hash32Schema,
  hashOf,
  type MessageCodec,
  PROTOCOL_VERSION,
  publicKey as publicKeySchema,
  type Signed,
  signature as signatureSchema,
  signed,
  sortedBy,
  U64_MAX,
} from "./messages/common.ts";
export * from "./messages/signing.ts";
export * from "./messages/sync.ts";
export * from "./messages/tx.ts";
export * from "./messages/votes.ts";
