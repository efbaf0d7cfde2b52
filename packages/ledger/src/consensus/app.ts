/**
 * The application consensus drives, shaped like CometBFT's ABCI++ so the same application could
 * later run under CometBFT: the proposer asks it for the transactions of a block
 * (prepareProposal), every validator asks it whether a proposed block is acceptable
 * (processProposal), and a decided block is executed (finalizeBlock) and persisted (commit).
 * The ledger's state machine implements it; the consensus engine knows nothing of transactions.
 */

import type { Commit, DuplicateVoteEvidence } from "./types.ts";
import type { ValidatorUpdate } from "./validators.ts";

export interface AppInfo {
  /** Height of the last block the application committed; 0 before the first. */
  lastHeight: number;
  /** The application hash after that block (the genesis app hash at height 0). */
  lastAppHash: Uint8Array;
}

export interface InitChainRequest {
  chainId: string;
  initialHeight: number;
  validators: ValidatorUpdate[];
}

export interface InitChainResponse {
  /** The application hash of the genesis state: the appHash of the first block's header. */
  appHash: Uint8Array;
  /** When given, replaces the genesis validator set (as in ABCI). */
  validators?: ValidatorUpdate[];
}

export interface PrepareProposalRequest<Tx> {
  height: number;
  proposer: Uint8Array;
  /** Candidate transactions from the mempool, in mempool order. */
  txs: Tx[];
  /** The application may not return more than this many transactions. */
  maxTxs: number;
  /** Double-signing seen by this node and not yet committed, for the application to turn into evidence transactions. */
  misbehavior: DuplicateVoteEvidence[];
}

export interface ProposalInfo<Tx> {
  height: number;
  /** The block hash. */
  hash: Uint8Array;
  proposer: Uint8Array;
  txs: Tx[];
  /** Milliseconds since the Unix epoch from the header. */
  time: number;
  /** The previous block's commit carried by this block (ABCI's decided last commit); null at the first height. */
  lastCommit?: Commit | null;
}

export interface TxResult {
  /** 0 is success; anything else is the application's error code (the block stays valid). */
  code: number;
  log?: string;
}

export interface FinalizeBlockResponse {
  /** One result per transaction, in block order. */
  txResults: TxResult[];
  /** Applied to the validator set of the next height (power 0 removes). */
  validatorUpdates: ValidatorUpdate[];
  /** The application hash after this block: the appHash of the next header. */
  appHash: Uint8Array;
}

export interface ConsensusApp<Tx> {
  info(): Promise<AppInfo>;
  initChain(request: InitChainRequest): Promise<InitChainResponse>;
  prepareProposal(request: PrepareProposalRequest<Tx>): Promise<Tx[]>;
  /** False rejects the block: this validator prevotes nil for it. */
  processProposal(request: ProposalInfo<Tx>): Promise<boolean>;
  finalizeBlock(request: ProposalInfo<Tx>): Promise<FinalizeBlockResponse>;
  /** Persists the state finalizeBlock produced. */
  commit(): Promise<void>;
}

/** Where a proposer takes candidate transactions from; the ledger's mempool implements it. */
export interface TxSource<Tx> {
  /** Up to `max` transactions in the order they should be proposed. */
  reap(max: number): Tx[];
  /** Called after each committed block so included transactions leave the pool. */
  update(height: number, txs: readonly Tx[]): void;
}
