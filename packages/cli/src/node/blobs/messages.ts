/**
 * Wire format of the two request/response protocols of the blob layer.
 *
 * Data blobs use @deepshard/protocol's blob messages (`blob.request` of kind "data" → `blob.chunk` or
 * `blob.error`). Weight chunks need what those messages cannot carry: the chunk's index under a
 * weights id and its Merkle proof (a buyer knows only the weights id, the Merkle root), and the
 * manifest that lays the chunks out in files. They get their own messages here, built from the same
 * schema toolkit and error reasons.
 */
import {
  array,
  BLOB_ERRORS,
  bytes,
  defineMessage,
  hash32Schema,
  type Infer,
  literal,
  oneOf,
  PROTOCOL_VERSION,
  string,
  struct,
  uint,
  union,
  version,
  versioned,
} from "@deepshard/protocol";
import { MAX_CHUNK_COUNT } from "@deepshard/tensor";
import { MAX_PROOF_HASHES, MAX_TRANSFER_CHUNK_BYTES } from "./chunks.ts";

/** `/deepshard/<chainId>/blob/1`: data blobs by content hash, in ranges. */
export const blobProtocol = (chainId: string): string => `/deepshard/${chainId}/blob/1`;
/** `/deepshard/<chainId>/weights/1`: weight chunks by weights id and index, with proofs; manifests. */
export const weightsProtocol = (chainId: string): string => `/deepshard/${chainId}/weights/1`;

const v = version(PROTOCOL_VERSION);
/** Files per manifest on the wire: a sharded checkpoint has an index and a few hundred shards at most. */
export const MAX_MANIFEST_FILES = 4096;

export const chunkRequestSchema = struct({
  v,
  type: literal("weights.chunk.request"),
  weightsId: hash32Schema,
  index: uint({ max: MAX_CHUNK_COUNT - 1 }),
});

export const manifestRequestSchema = struct({
  v,
  type: literal("weights.manifest.request"),
  weightsId: hash32Schema,
});

export const weightsRequestSchema = versioned(v, union("type", [chunkRequestSchema, manifestRequestSchema]));

export const chunkReplySchema = struct({
  v,
  type: literal("weights.chunk"),
  weightsId: hash32Schema,
  index: uint({ max: MAX_CHUNK_COUNT - 1 }),
  data: bytes({ max: MAX_TRANSFER_CHUNK_BYTES }),
  proof: array(hash32Schema, { max: MAX_PROOF_HASHES }),
});

export const manifestReplySchema = struct({
  v,
  type: literal("weights.manifest"),
  weightsId: hash32Schema,
  chunkSize: uint({ min: 1, max: MAX_TRANSFER_CHUNK_BYTES }),
  chunkCount: uint({ max: MAX_CHUNK_COUNT }),
  totalSize: uint(),
  files: array(
    struct({
      name: string({ min: 1, max: 255 }),
      size: uint(),
      firstChunk: uint(),
      chunkCount: uint(),
    }),
    { min: 1, max: MAX_MANIFEST_FILES },
  ),
});

export const weightsErrorSchema = struct({
  v,
  type: literal("weights.error"),
  weightsId: hash32Schema,
  reason: oneOf(BLOB_ERRORS),
});

export const weightsResponseSchema = versioned(
  v,
  union("type", [chunkReplySchema, manifestReplySchema, weightsErrorSchema]),
);

export type WeightsRequest = Infer<typeof weightsRequestSchema>;
export type WeightsResponse = Infer<typeof weightsResponseSchema>;
export type ChunkReply = Infer<typeof chunkReplySchema>;
export type ManifestReply = Infer<typeof manifestReplySchema>;

export const MAX_WEIGHTS_REQUEST_BYTES = 256;
/** CBOR framing of a chunk reply around its data: keys, the proof's hashes, the weights id. */
export const CHUNK_REPLY_OVERHEAD = 512 + MAX_PROOF_HASHES * 34;
export const MAX_WEIGHTS_RESPONSE_BYTES = MAX_TRANSFER_CHUNK_BYTES + CHUNK_REPLY_OVERHEAD;
/** A manifest reply is at most this large (4096 files with 255-byte names fit). */
export const MAX_MANIFEST_REPLY_BYTES = 2 << 20;

export const weightsRequestCodec = defineMessage<WeightsRequest>(
  "weightsRequest",
  weightsRequestSchema,
  MAX_WEIGHTS_REQUEST_BYTES,
);
export const weightsResponseCodec = defineMessage<WeightsResponse>(
  "weightsResponse",
  weightsResponseSchema,
  MAX_WEIGHTS_RESPONSE_BYTES,
);
