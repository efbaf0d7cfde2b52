/**
 * Blocks as consensus builds and checks them. The shapes follow the protocol's header/block/commit
 * schemas; how a header, a commit and a list of transactions are hashed is injected
 * (`BlockHashing`), so the same node code runs with opaque byte transactions in simulation and with
 * the protocol's signed transactions and canonical encodings on the network.
 */
import type { Commit } from "./types.ts";

export interface BlockHeader {
  v: 1;
  chainId: string;
  height: number;
  /** Milliseconds since the Unix epoch as the proposer saw it (informative: the state machine must not read clocks). */
  time: number;
  /** Hash of the previous block's header; 32 zero bytes at the first height. */
  prevHash: Uint8Array;
  txRoot: Uint8Array;
  /** The application's hash after the previous block (as in Tendermint). */
  appHash: Uint8Array;
  proposer: Uint8Array;
  /** Hash of `lastCommit`; 32 zero bytes at the first height. */
  lastCommitHash: Uint8Array;
}

export interface Block<Tx> {
  v: 1;
  header: BlockHeader;
  txs: Tx[];
  /** The commit of the previous block; null at the first height. */
  lastCommit: Commit | null;
}

export interface BlockHashing<Tx> {
  /** The block hash: the hash of the header, which commits to everything else. */
  headerHash(header: BlockHeader): Uint8Array;
  commitHash(commit: Commit): Uint8Array;
  txRoot(txs: readonly Tx[]): Uint8Array;
}

/** A committed block with the commit that finalised it: what block sync serves. */
export interface SyncedBlock<Tx> {
  block: Block<Tx>;
  commit: Commit;
}

export const ZERO_HASH = new Uint8Array(32);
