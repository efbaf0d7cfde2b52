import { DeepshardError } from "@deepshard/protocol";

export type StoreErrorCode =
  /** Another process (or another handle in this one) holds the database's lock. */
  | "DATABASE_IN_USE"
  /** The store's contents are damaged or incomplete; it is never reset silently. */
  | "STORE_CORRUPT"
  /** The store belongs to another chain or genesis. */
  | "STORE_MISMATCH"
  | "STORE_IO"
  | "STORE_CLOSED"
  /** A vote conflicting with one already signed at the same height, round and type. */
  | "VOTE_CONFLICT";

export class StoreError extends DeepshardError<StoreErrorCode> {
  override name = "StoreError";
}
