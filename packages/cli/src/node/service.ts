/**
 * The seams of the daemon. `NodeLedger` is what the daemon needs from the ledger node (the
 * ledger package's node, adapted in ledger-node.ts); `RoleService` is what each role
 * (validator, informant, trainer, storage, inference) implements to run inside the daemon, with a
 * `RoleContext` giving it the node's parts. Roles are composed by the daemon, never by each other.
 */
import type { LedgerState } from "@deepshard/ledger";
import type { Block, SignedTx } from "@deepshard/protocol";
import type { Host } from "@deepshard/protocol/host";
import type { ApiRoutes } from "./api.ts";
import type { BlobClient, BlobService, BlobStore, ChunkStore } from "./blobs/index.ts";
import type { NodeConfig, Role } from "./config.ts";
import type { NetworkPaths } from "./datadir.ts";
import type { NodeEvents } from "./events.ts";
import type { Logger } from "./logger.ts";
import type { NodeMetrics } from "./metrics.ts";
import type { NodeAccount, TxBody } from "./tx.ts";

export interface TxResult {
  /** 0 is success; else the ledger's numeric code (see `TX_CODES` of @deepshard/ledger). */
  code: number;
  log: string;
}

export interface CommittedBlockInfo {
  height: number;
  hash: Uint8Array;
  block: Block;
  /** One per transaction, in block order. */
  txResults: TxResult[];
}

export interface StoredBlockInfo {
  height: number;
  hash: Uint8Array;
  block: Block;
  /** Absent when the node no longer knows them (they are not part of the block). */
  txResults?: TxResult[] | undefined;
}

export interface ConsensusPosition {
  height: number;
  round: number;
  step: string;
}

export interface NodeLedger {
  readonly chainId: string;
  /** The libp2p host the ledger node runs on; role services share it. */
  readonly host: Host;
  /** The state after the last committed block. */
  state(): LedgerState;
  /** Where consensus stands: the height being decided, its round and step. */
  consensus(): ConsensusPosition;
  /** Whether the signature verifies; remembered, so the mempool does not check it again. */
  verifySignature(tx: SignedTx): boolean;
  /**
   * Checks a signed transaction against the committed state and adds it to the mempool (which
   * gossips it). A refusal is a DeepshardError whose code says why (TX_BAD_NONCE, TX_COMMITTED, …).
   */
  submit(tx: SignedTx): Promise<void>;
  mempool(): { txs: number; bytes: number; has(hash: Uint8Array): boolean };
  /** The nonce the sender's next transaction should carry, counting its pooled ones. */
  nextNonce(sender: Uint8Array): bigint;
  block(height: number): Promise<StoredBlockInfo | undefined>;
  /** Where a committed transaction is. */
  findTx(hash: Uint8Array): Promise<{ height: number; index: number } | undefined>;
  onCommit(listener: (block: CommittedBlockInfo) => void): () => void;
  /** Stops consensus, the host, and closes the store. */
  stop(): Promise<void>;
}

/** Starts the ledger node (with its host); the daemon owns and stops what it returns. */
export type LedgerFactory = (options: LedgerFactoryOptions) => Promise<NodeLedger>;

export interface LedgerFactoryOptions {
  paths: NetworkPaths;
  config: NodeConfig;
  account: NodeAccount;
  logger: Logger;
}

/** The node's content-addressed data and the libp2p service and client that move it. */
export interface NodeStores {
  /** Data blobs (informants' submissions) under `<network>/blobs`. */
  blobs: BlobStore;
  /** Weight chunks under `<network>/weights`. */
  chunks: ChunkStore;
  /** Serves both to peers; weight chunks only to peers `canServe` approves. */
  blobService: BlobService;
  /** Fetches blobs and weights from peers, verifying every chunk. */
  blobClient: BlobClient;
}

export interface RoleContext {
  config: NodeConfig;
  paths: NetworkPaths;
  account: NodeAccount;
  host: Host;
  ledger: NodeLedger;
  stores: NodeStores;
  /** Add routes under `/<role>/…`. */
  api: ApiRoutes;
  events: NodeEvents;
  metrics: NodeMetrics;
  /** A child logger named after the role. */
  logger: Logger;
  /** Aborted when the daemon begins to stop. */
  signal: AbortSignal;
  /**
   * Signs `body` with the node key (chain id, next nonce, the minimum fee unless given) and
   * submits it; returns the transaction hash.
   */
  send(body: TxBody, options?: { fee?: bigint }): Promise<Uint8Array>;
}

/** One role running inside the daemon. `start` returns once it runs; `stop` once it has let go. */
export interface RoleService {
  readonly name: Role | string;
  start(ctx: RoleContext): Promise<void>;
  stop(): Promise<void>;
}

/** Makes a role's service; registered per role name in the daemon's options. */
export type RoleFactory = (config: NodeConfig) => RoleService;
