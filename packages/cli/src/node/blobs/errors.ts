import { DeepshardError } from "@deepshard/protocol";

/**
 * What can go wrong storing, serving or fetching blobs and weight chunks:
 * - `INVALID_ARGUMENT`: a malformed hash, index, size or option from the caller;
 * - `HASH_MISMATCH`: the bytes do not hash to the expected content hash;
 * - `TOO_LARGE`: more bytes than announced or allowed (refused as soon as they exceed);
 * - `SIZE_MISMATCH`: fewer bytes than announced;
 * - `NOT_FOUND`: no such blob or chunk (locally, or at every peer asked);
 * - `BAD_RANGE`: an offset past the end of a blob;
 * - `NO_MANIFEST`: a chunk arrived for weights whose manifest is not stored;
 * - `MANIFEST_CONFLICT`: a second, different manifest for the same weights id;
 * - `INVALID_CHUNK`: a weight chunk failed its Merkle proof;
 * - `NO_LICENSE`: the holder refused: the requester holds no license for these weights;
 * - `BUSY`: the holder is serving too many requests;
 * - `BAD_REQUEST`: a request that does not decode (the reply to a malformed request);
 * - `BAD_RESPONSE`: a reply that does not decode or does not answer the request;
 * - `UNAVAILABLE`: every peer asked failed, for mixed reasons (listed in `meta.attempts`);
 * - `ABORTED`: the caller's signal aborted;
 * - `IO`: the file system failed.
 */
export type BlobErrorCode =
  | "INVALID_ARGUMENT"
  | "HASH_MISMATCH"
  | "TOO_LARGE"
  | "SIZE_MISMATCH"
  | "NOT_FOUND"
  | "BAD_RANGE"
  | "NO_MANIFEST"
  | "MANIFEST_CONFLICT"
  | "INVALID_CHUNK"
  | "NO_LICENSE"
  | "BUSY"
  | "BAD_REQUEST"
  | "BAD_RESPONSE"
  | "UNAVAILABLE"
  | "ABORTED"
  | "IO";

export class BlobError extends DeepshardError<BlobErrorCode> {
  override name = "BlobError";
}
