/**
 * Blob transfer by content hash: informants' data blobs and the chunks of model weights. A reply
 * carries at most BLOB_CHUNK_MAX bytes; larger blobs are read with successive offsets.
 */
import { bytes, type Infer, literal, oneOf, struct, uint, union, versioned } from "../schema.ts";
import { defineMessage, hash32, v } from "./common.ts";

export const BLOB_CHUNK_MAX = 1024 * 1024;

export const blobRequestSchema = struct({
  v,
  type: literal("blob.request"),
  kind: oneOf(["data", "weights"]),
  /** The content hash of a data blob, or the hash of one weights chunk. */
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
