/** Block sync: a lagging node asks a peer for committed blocks from a height on. */
import { array, type Infer, literal, struct, uint } from "../schema.ts";
import { blockSchema, commitSchema } from "./block.ts";
import { defineMessage, v } from "./common.ts";

export const SYNC_MAX_BLOCKS = 64;
/** A server stops adding blocks before a reply would exceed this. */
export const MAX_SYNC_RESPONSE_BYTES = 16 * 1024 * 1024;

export const syncRequestSchema = struct({
  v,
  type: literal("sync.request"),
  fromHeight: uint({ min: 1 }),
  maxBlocks: uint({ min: 1, max: SYNC_MAX_BLOCKS }),
});

/** Each block comes with the commit that finalised it, so the last one is verifiable too. */
export const syncedBlockSchema = struct({ block: blockSchema, commit: commitSchema });
export const syncResponseSchema = struct({
  v,
  type: literal("sync.response"),
  /** The server's latest committed height, so the requester knows how far behind it is. */
  latestHeight: uint(),
  blocks: array(syncedBlockSchema, { max: SYNC_MAX_BLOCKS }),
});

export type SyncRequest = Infer<typeof syncRequestSchema>;
export type SyncedBlock = Infer<typeof syncedBlockSchema>;
export type SyncResponse = Infer<typeof syncResponseSchema>;

export const MAX_SYNC_REQUEST_BYTES = 128;
export const syncRequestCodec = defineMessage<SyncRequest>(
  "syncRequest",
  syncRequestSchema,
  MAX_SYNC_REQUEST_BYTES,
);
export const syncResponseCodec = defineMessage<SyncResponse>(
  "syncResponse",
  syncResponseSchema,
  MAX_SYNC_RESPONSE_BYTES,
);

export const encodeSyncRequest = (m: SyncRequest): Uint8Array => syncRequestCodec.encode(m);
export const decodeSyncRequest = (bytes: Uint8Array): SyncRequest => syncRequestCodec.decode(bytes);
export const encodeSyncResponse = (m: SyncResponse): Uint8Array => syncResponseCodec.encode(m);
export const decodeSyncResponse = (bytes: Uint8Array): SyncResponse => syncResponseCodec.decode(bytes);
