/**
 * The ledger package's node behind the daemon's `NodeLedger` seam, plus the two lookups the API
 * needs and the node does not keep: where a committed transaction is (an index filled from
 * commits, and at start from the most recent stored blocks) and which pooled transaction a hash
 * names.
 */
import {
  type CommittedBlock,
  type LedgerNode,
  loadGenesis,
  MempoolError,
  type NodeOptions,
  startNode,
} from "@deepshard/ledger";
import { type Block, DeepshardError, type SignedTx, txHash } from "@deepshard/protocol";
import type { Host } from "@deepshard/protocol/host";
import type { Logger } from "./logger.ts";
import type {
  CommittedBlockInfo,
  ConsensusPosition,
  LedgerFactory,
  NodeLedger,
  StoredBlockInfo,
  TxResult,
} from "./service.ts";

/** Transactions remembered by the index; the oldest are forgotten first. */
const MAX_INDEXED_TXS = 200_000;
/** Stored blocks indexed at start (the most recent ones). */
const BACKFILL_BLOCKS = 10_000;

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

export class LedgerNodeAdapter implements NodeLedger {
  readonly node: LedgerNode;
  readonly chainId: string;
  readonly host: Host;
  readonly #txIndex = new Map<string, { height: number; index: number }>();
  /** Results of the blocks committed while this process ran (stored blocks do not carry them). */
  readonly #results = new Map<number, TxResult[]>();
  readonly #pooled = new Map<string, SignedTx>();
  readonly #offs: (() => void)[] = [];
  readonly #log: Logger;
  readonly #stopping = new AbortController();

  constructor(node: LedgerNode, log: Logger) {
    if (!node.host) throw new DeepshardError("NO_NETWORK", "the daemon needs a ledger node with a network");
    this.node = node;
    this.host = node.host;
    this.chainId = node.chain.genesis.chainId;
    this.#log = log;
    this.#offs.push(
      node.mempool.onAdd((tx) => this.#pooled.set(hex(txHash(tx)), tx)),
      node.onCommit((c) => this.#guard(() => this.#indexCommitted(c))),
    );
  }

  state() {
    return this.node.state;
  }

  consensus(): ConsensusPosition {
    const c = this.node.consensus;
    return { height: c.height, round: c.engine.round, step: c.engine.step };
  }

  verifySignature(tx: SignedTx): boolean {
    return this.node.mempool.signatures.verify(tx);
  }

  async submit(tx: SignedTx): Promise<void> {
    try {
      this.node.submit(tx);
    } catch (err) {
      // The mempool wraps the state machine's refusal; its code (TX_BAD_NONCE, …) says more.
      if (err instanceof MempoolError && err.code === "TX_REFUSED" && err.cause instanceof DeepshardError) {
        throw err.cause;
      }
      throw err;
    }
  }

  mempool() {
    const pool = this.node.mempool;
    return {
      txs: pool.size,
      bytes: pool.sizeBytes,
      has: (hash: Uint8Array) => {
        const tx = this.#pooled.get(hex(hash));
        return tx !== undefined && pool.has(tx);
      },
    };
  }

  nextNonce(sender: Uint8Array): bigint {
    return this.node.nextNonce(sender);
  }

  async block(height: number): Promise<StoredBlockInfo | undefined> {
    if (height > this.node.height) return undefined;
    const synced = await this.node.chain.get(height);
    if (!synced) return undefined;
    const block = synced.block as Block;
    return {
      height,
      hash: synced.commit.blockHash,
      block,
      txResults: this.#results.get(height),
    };
  }

  async findTx(hash: Uint8Array): Promise<{ height: number; index: number } | undefined> {
    return this.#txIndex.get(hex(hash));
  }

  /** A listener that throws is logged: it must not reach consensus, which calls it while committing. */
  onCommit(listener: (block: CommittedBlockInfo) => void): () => void {
    return this.node.onCommit((c) => this.#guard(() => listener(toInfo(c))));
  }

  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#log.error("a commit listener failed", {
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }

  /** Indexes the most recent stored blocks; runs in the background until done or stopped. */
  async backfill(): Promise<void> {
    const top = this.node.height;
    const signal = this.#stopping.signal;
    for (let h = Math.max(1, top - BACKFILL_BLOCKS + 1); h <= top && !signal.aborted; h++) {
      const synced = await this.node.chain.get(h);
      synced?.block.txs.forEach((tx, index) => {
        const id = hex(txHash(tx));
        if (!this.#txIndex.has(id)) this.#remember(id, { height: h, index });
      });
    }
    this.#log.debug("transaction index filled", { from: Math.max(1, top - BACKFILL_BLOCKS + 1), to: top });
  }

  async stop(): Promise<void> {
    this.#stopping.abort();
    for (const off of this.#offs.splice(0)) off();
    await this.node.stop();
  }

  #indexCommitted(c: CommittedBlock<SignedTx>): void {
    c.block.txs.forEach((tx, index) => {
      const id = hex(txHash(tx));
      this.#remember(id, { height: c.height, index });
      this.#pooled.delete(id);
    });
    this.#results.set(c.height, toResults(c));
    if (this.#results.size > BACKFILL_BLOCKS) this.#results.delete(this.#results.keys().next().value!);
    // Pooled transactions can also leave by eviction; forget those now and then.
    if (this.#pooled.size > this.node.mempool.size + 1024) {
      for (const [id, tx] of this.#pooled) if (!this.node.mempool.has(tx)) this.#pooled.delete(id);
    }
  }

  #remember(id: string, where: { height: number; index: number }): void {
    this.#txIndex.set(id, where);
    if (this.#txIndex.size > MAX_INDEXED_TXS) this.#txIndex.delete(this.#txIndex.keys().next().value!);
  }
}

function toResults(c: CommittedBlock<SignedTx>): TxResult[] {
  return c.txResults.map((r) => ({ code: r.code, log: r.log ?? "" }));
}

function toInfo(c: CommittedBlock<SignedTx>): CommittedBlockInfo {
  return { height: c.height, hash: c.hash, block: c.block as Block, txResults: toResults(c) };
}

/** Options of the ledger node the daemon does not take from its config (tests shorten timeouts). */
export type LedgerNodeOverrides = Partial<Omit<NodeOptions, "genesis" | "secretKey" | "dataDir">>;

/** Starts the ledger package's node on the network's genesis and LevelDB directory. */
export function ledgerNodeFactory(overrides: LedgerNodeOverrides = {}): LedgerFactory {
  return async ({ paths, config, account, logger }) => {
    const genesis = await loadGenesis(paths.genesis);
    if (genesis.chainId !== config.chainId) {
      throw new DeepshardError(
        "GENESIS_MISMATCH",
        `${paths.genesis} is the genesis of "${genesis.chainId}"`,
        {
          details: `this is the directory of network "${config.chainId}"`,
        },
      );
    }
    const node = await startNode({
      genesis,
      secretKey: account.secretKey,
      dataDir: paths.db,
      network: true,
      listen: config.listen,
      bootstrap: config.bootstrap,
      blockIntervalMs: config.blockIntervalMs,
      logger: logger.child("host"),
      ...overrides,
    });
    const adapter = new LedgerNodeAdapter(node, logger);
    adapter.backfill().catch((err: unknown) => logger.warn("transaction index incomplete", { error: err }));
    return adapter;
  };
}
