/**
 * The two request/response protocols that move bytes between nodes.
 *
 * Data blobs (`blobProtocol`): an informant's submission by content hash, read in ranges — a reply
 * carries at most BLOB_CHUNK_MAX bytes; larger blobs are read with successive offsets.
 *
 * Weights (`weightsProtocol`): a buyer knows only the weights id (the Merkle root over the chunks),
 * so a chunk is asked for by its index under that id and comes with its inclusion proof; the
 * manifest says how many chunks there are and how they make up the model's files.
 */
import {
  array,
  bytes,
  type Infer,
  literal,
  oneOf,
  string,
  struct,
  uint,
  union,
  versioned,
} from "../schema.ts";
import { defineMessage, hash32, v } from "./common.ts";

/** `/deepshard/<chainId>/blob/1`: data blobs by content hash, in ranges. */
export const blobProtocol = (chainId: string): string => `/deepshard/${chainId}/blob/1`;
/** `/deepshard/<chainId>/weights/1`: weight chunks by weights id and index, with proofs; manifests. */
export const weightsProtocol = (chainId: string): string => `/deepshard/${chainId}/weights/1`;

export const BLOB_CHUNK_MAX = 1024 * 1024;

export const blobRequestSchema = struct({
  v,
  type: literal("blob.request"),
  /** The content hash of the data blob. */
  hash: hash32,
  offset: uint(),
  length: uint({ min: 1, max: BLOB_CHUNK_MAX }),
});

export const blobChunkSchema = struct({
  v,
  type: literal("blob.chunk"),
  hash: hash32,
  offset: uint(),
  /** The size of the whole blob, so the requester knows when it is done. */
  totalSize: uint(),
  data: bytes({ max: BLOB_CHUNK_MAX }),
});

export const BLOB_ERRORS = ["not_found", "no_license", "bad_range", "busy"] as const;
export const blobErrorSchema = struct({
  v,
  type: literal("blob.error"),
  hash: hash32,
  reason: oneOf(BLOB_ERRORS),
});
export const blobResponseSchema = versioned(v, union("type", [blobChunkSchema, blobErrorSchema]));

export type BlobRequest = Infer<typeof blobRequestSchema>;
export type BlobChunk = Infer<typeof blobChunkSchema>;
export type BlobError = Infer<typeof blobErrorSchema>;
export type BlobResponse = Infer<typeof blobResponseSchema>;

export const MAX_BLOB_REQUEST_BYTES = 256;
export const MAX_BLOB_RESPONSE_BYTES = BLOB_CHUNK_MAX + 256;
export const blobRequestCodec = defineMessage<BlobRequest>(
  "blobRequest",
  blobRequestSchema,
  MAX_BLOB_REQUEST_BYTES,
);
export const blobResponseCodec = defineMessage<BlobResponse>(
  "blobResponse",
  blobResponseSchema,
  MAX_BLOB_RESPONSE_BYTES,
);

export const encodeBlobRequest = (m: BlobRequest): Uint8Array => blobRequestCodec.encode(m);
export const decodeBlobRequest = (bytes: Uint8Array): BlobRequest => blobRequestCodec.decode(bytes);
export const encodeBlobResponse = (m: BlobResponse): Uint8Array => blobResponseCodec.encode(m);
export const decodeBlobResponse = (bytes: Uint8Array): BlobResponse => blobResponseCodec.decode(bytes);

/** Chunks under one weights id: 16 Mi (16 TiB at the default 1 MiB chunk size). */
export const MAX_CHUNK_COUNT = 1 << 24;
/**
 * Chunks above this size are not stored or transferred: one chunk travels in one reply, and a reply
 * is held in memory whole. Weights cut at the default chunk size (1 MiB) are well below.
 */
export const MAX_TRANSFER_CHUNK_BYTES = 16 << 20;
/** An audit path over MAX_CHUNK_COUNT chunks has 24 hashes; the slack costs nothing. */
export const MAX_PROOF_HASHES = 64;
/** Files per manifest: a sharded checkpoint has an index and a few hundred shards at most. */
export const MAX_MANIFEST_FILES = 4096;

export const weightsChunkRequestSchema = struct({
  v,
  type: literal("weights.chunk.request"),
  weightsId: hash32,
  index: uint({ max: MAX_CHUNK_COUNT - 1 }),
});

export const weightsManifestRequestSchema = struct({
  v,
  type: literal("weights.manifest.request"),
  weightsId: hash32,
});

export const weightsRequestSchema = versioned(
  v,
  union("type", [weightsChunkRequestSchema, weightsManifestRequestSchema]),
);

export const weightsChunkSchema = struct({
  v,
  type: literal("weights.chunk"),
  weightsId: hash32,
  index: uint({ max: MAX_CHUNK_COUNT - 1 }),
  data: bytes({ max: MAX_TRANSFER_CHUNK_BYTES }),
  /** The chunk's RFC 6962 audit path up to the weights id (see merkle.ts). */
  proof: array(hash32, { max: MAX_PROOF_HASHES }),
});

/** The fields of a manifest; its consistency (chunk counts, file layout) is the receiver's check. */
export const weightsManifestSchema = struct({
  v,
  type: literal("weights.manifest"),
  weightsId: hash32,
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
  weightsId: hash32,
  reason: oneOf(BLOB_ERRORS),
});

export const weightsResponseSchema = versioned(
  v,
  union("type", [weightsChunkSchema, weightsManifestSchema, weightsErrorSchema]),
);

export type WeightsChunkRequest = Infer<typeof weightsChunkRequestSchema>;
export type WeightsManifestRequest = Infer<typeof weightsManifestRequestSchema>;
export type WeightsRequest = Infer<typeof weightsRequestSchema>;
export type WeightsChunk = Infer<typeof weightsChunkSchema>;
export type WeightsManifest = Infer<typeof weightsManifestSchema>;
export type WeightsError = Infer<typeof weightsErrorSchema>;
export type WeightsResponse = Infer<typeof weightsResponseSchema>;

export const MAX_WEIGHTS_REQUEST_BYTES = 256;
/** CBOR framing of a chunk reply around its data: keys, the proof's hashes, the weights id. */
export const WEIGHTS_CHUNK_OVERHEAD = 512 + MAX_PROOF_HASHES * 34;
export const MAX_WEIGHTS_RESPONSE_BYTES = MAX_TRANSFER_CHUNK_BYTES + WEIGHTS_CHUNK_OVERHEAD;
/**
 * No valid manifest reply is larger (4096 files with 255-byte names take about 1.3 MB): a requester
 * can cap the reply at this instead of a chunk's size.
 */
export const MAX_WEIGHTS_MANIFEST_BYTES = 2 << 20;

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

export const encodeWeightsRequest = (m: WeightsRequest): Uint8Array => weightsRequestCodec.encode(m);
export const decodeWeightsRequest = (bytes: Uint8Array): WeightsRequest => weightsRequestCodec.decode(bytes);
export const encodeWeightsResponse = (m: WeightsResponse): Uint8Array => weightsResponseCodec.encode(m);
export const decodeWeightsResponse = (bytes: Uint8Array): WeightsResponse =>
  weightsResponseCodec.decode(bytes);
