/** The layer that moves bytes between nodes: stores for blobs and weight chunks, their service, the fetcher. */
export { ChunkStore, type StoredChunk } from "./chunks.ts";
export {
  BlobClient,
  type BlobClientOptions,
  type ChunkFailure,
  type FetchChunksOptions,
  type FetchProgress,
  type FetchWeightsOptions,
  type FetchWeightsResult,
  type Holders,
  type PeerStats,
  peerKey,
} from "./client.ts";
export { BlobError, type BlobErrorCode } from "./errors.ts";
export { hashHex } from "./files.ts";
export {
  BlobService,
  type BlobServiceOptions,
  type BlobServiceStats,
  type CanServe,
} from "./service.ts";
export { type BlobInfo, type BlobSource, BlobStore, type PutOptions } from "./store.ts";
