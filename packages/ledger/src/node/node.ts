/**
 * A ledger node: the store, the state machine, consensus, the mempool and the network, composed.
 * `startNode` opens (or creates) the data directory, replays the stored chain and checks its
 * state roots, then resumes consensus at the next height; the vote log keeps a restarted
 * validator from signing anything twice. A genesis with this node as its only validator is the
 * embedded default: it commits blocks alone, one per block interval, and needs no network.
 */
import {
  DeepshardError,
  keyPairFromSecret,
  libp2pPrivateKey,
  type SignedTx,
  type SignedVote,
  sign,
  signingBytes,
  type TxPayload,
} from "@deepshard/protocol";
import type { Host, HostLogger } from "@deepshard/protocol/host";
import type { Block, SyncedBlock } from "../consensus/block.ts";
import { keySigner, protocolCrypto } from "../consensus/encoding.ts";
import type { TimeoutConfig } from "../consensus/engine.ts";
import { Libp2pTransport } from "../consensus/libp2p-transport.ts";
import { type CommittedBlock, ConsensusNode } from "../consensus/node.ts";
import type { ConsensusTransport } from "../consensus/transport.ts";
import type { ConsensusMessage, DuplicateVoteEvidence } from "../consensus/types.ts";
import type { Genesis } from "../genesis/genesis.ts";
import { ledgerMempoolApp } from "../mempool/ledger-check.ts";
import { type AddStatus, Mempool, type MempoolLimits } from "../mempool/mempool.ts";
import { SignatureCache } from "../mempool/signatures.ts";
import { toHex } from "../state/hashing.ts";
import type { LedgerState } from "../state/tables.ts";
import type { Meta } from "../state/types.ts";
import { type DbController, LevelDb, MemoryDb } from "../store/db.ts";
import { LedgerStore } from "../store/ledger-store.ts";
import { LedgerChain, ledgerBlockHashing } from "./ledger-app.ts";
import { TxGossip, type TxResendOptions } from "./tx-gossip.ts";

export interface NodeOptions {
  genesis: Genesis;
  /** The 32-byte ed25519 secret seed: the validator key, the account, and the libp2p peer id. */
  secretKey: Uint8Array;
  /** The LevelDB directory; an in-memory store (lost on stop) when absent. */
  dataDir?: string | undefined;
  /** Without a network the node runs a chain on its own (the one-validator default). Default true. */
  network?: boolean | undefined;
  /** Listen multiaddrs (default `/ip4/127.0.0.1/tcp/0`). */
  listen?: string[] | undefined;
  /** Peers to dial at start, multiaddrs ending in `/p2p/<peer id>`. */
  bootstrap?: string[] | undefined;
  /** Pause after each committed block: at most one block, empty or not, per interval. Default 1000 ms. */
  blockIntervalMs?: number | undefined;
  timeouts?: TimeoutConfig | undefined;
  /** How often a validator re-sends its votes of the current height. Default 1000 ms. */
  gossipIntervalMs?: number | undefined;
  /** Transactions per block; small enough that a height's work fits the consensus timeouts. Default 2000. */
  maxBlockTxs?: number | undefined;
  /** Bytes of transactions per block (gossip frames are limited to 4 MiB). Default 1 MiB. */
  maxBlockBytes?: number | undefined;
  mempool?: Partial<MempoolLimits> | undefined;
  txBatch?: { flushIntervalMs?: number; maxBatchTxs?: number } | undefined;
  /** When pooled transactions not yet committed are gossiped again. */
  txResend?: TxResendOptions | undefined;
  /** Gossipsub heartbeat; tests shorten it to form meshes quickly. */
  heartbeatIntervalMs?: number | undefined;
  logger?: HostLogger | undefined;
}

/** libp2p's tag (`KEEP_ALIVE` of @libp2p/interface) for peers its reconnect queue redials. */
const KEEP_ALIVE = "keep-alive";

export type NodeErrorCode = "NO_NETWORK" | "TIMEOUT";

export class NodeError extends DeepshardError<NodeErrorCode> {
  override name = "NodeError";
}

/** A transport for a node without a network: nobody to send to, nobody asks. */
class LoneTransport implements ConsensusTransport<SignedTx> {
  readonly id = "local";
  broadcast(_message: ConsensusMessage<Block<SignedTx>>): void {}
  onMessage(): void {}
  async requestBlocks(): Promise<SyncedBlock<SignedTx>[]> {
    return [];
  }
  onBlocksRequest(): void {}
}

export class LedgerNode {
  readonly chain: LedgerChain;
  readonly mempool: Mempool;
  readonly consensus: ConsensusNode<SignedTx>;
  /** The libp2p host; undefined without a network. */
  readonly host: Host | undefined;
  readonly publicKey: Uint8Array;
  /** Failures absorbed while running (publishing, gossip handling), for logs and tests. */
  readonly errors: unknown[];
  private readonly secretKey: Uint8Array;
  private readonly transport: Libp2pTransport | undefined;
  private readonly txGossip: TxGossip | undefined;
  private stopped: Promise<void> | undefined;

  private constructor(parts: {
    chain: LedgerChain;
    mempool: Mempool;
    consensus: ConsensusNode<SignedTx>;
    host: Host | undefined;
    transport: Libp2pTransport | undefined;
    txGossip: TxGossip | undefined;
    secretKey: Uint8Array;
    errors: unknown[];
  }) {
    this.errors = parts.errors;
    this.chain = parts.chain;
    this.mempool = parts.mempool;
    this.consensus = parts.consensus;
    this.host = parts.host;
    this.transport = parts.transport;
    this.txGossip = parts.txGossip;
    this.secretKey = parts.secretKey;
    this.publicKey = keyPairFromSecret(parts.secretKey).publicKey;
  }

  /** Opens the store, replays it, joins the network and starts consensus. */
  static async start(options: NodeOptions): Promise<LedgerNode> {
    const { genesis } = options;
    const db: DbController = options.dataDir ? await LevelDb.open(options.dataDir) : new MemoryDb();
    let store: LedgerStore | undefined;
    let host: Host | undefined;
    try {
      store = await LedgerStore.open(db);
      const signatures = new SignatureCache();
      const chain = await LedgerChain.open({ store, genesis, signatures });
      const mempool = new Mempool({
        app: ledgerMempoolApp(() => chain.state),
        signatures,
        limits: options.mempool,
      });
      const errors: unknown[] = [];
      const onError = (err: unknown) => {
        if (errors.length < 1000) errors.push(err);
      };
      let transport: Libp2pTransport | undefined;
      let txGossip: TxGossip | undefined;
      if (options.network ?? true) {
        // Loaded only by nodes that network, so importing the ledger does not load libp2p.
        const { createHost, gossipTopic } = await import("@deepshard/protocol/host");
        host = await createHost({
          privateKey: libp2pPrivateKey(options.secretKey),
          listen: options.listen ?? ["/ip4/127.0.0.1/tcp/0"],
          ...(options.bootstrap ? { bootstrap: options.bootstrap } : {}),
          ...(options.logger ? { logger: options.logger } : {}),
          ...(options.heartbeatIntervalMs === undefined
            ? {}
            : { gossip: { heartbeatIntervalMs: options.heartbeatIntervalMs } }),
        });
        transport = await Libp2pTransport.create({
          host,
          chainId: genesis.chainId,
          latestHeight: () => chain.height,
          onError,
          knownTx: (id) => mempool.getById(id),
        });
        txGossip = new TxGossip({
          host,
          topic: gossipTopic(genesis.chainId, "txs"),
          signatures,
          known: (id) => mempool.getById(id),
          flushIntervalMs: options.txBatch?.flushIntervalMs,
          maxBatchTxs: options.txBatch?.maxBatchTxs,
          pooled: () => mempool.pooled(),
          resend: options.txResend,
          onError,
        });
      }
      const address = toHex(keyPairFromSecret(options.secretKey).publicKey);
      const isValidator = () =>
        (chain.state.tables.meta.get("meta") as Meta).validators.some((v) => v.address === address);
      const maxBlockBytes = options.maxBlockBytes ?? 1024 * 1024;
      const consensus = new ConsensusNode<SignedTx>({
        chainId: genesis.chainId,
        genesis: { validators: [] },
        app: chain,
        store: chain,
        transport: transport ?? new LoneTransport(),
        crypto: protocolCrypto,
        hashing: ledgerBlockHashing,
        // Every node gets its key: the engine signs only at heights whose set gives the key power,
        // so a node that bonds while running starts voting when its bond takes effect.
        signer: keySigner(options.secretKey),
        signLog: store.votes,
        txs: { reap: (max) => mempool.reap(max, maxBlockBytes), update: (h, txs) => mempool.update(h, txs) },
        resume: (height) => chain.resume(height),
        timeouts: options.timeouts,
        commitTimeoutMs: options.blockIntervalMs ?? 1000,
        gossipIntervalMs: options.gossipIntervalMs,
        maxBlockTxs: Math.min(options.maxBlockTxs ?? 2000, genesis.params.maxTxsPerBlock),
      });
      const node = new LedgerNode({
        chain,
        mempool,
        consensus,
        host,
        transport,
        txGossip,
        secretKey: options.secretKey,
        errors,
      });
      txGossip?.start((txs) => {
        for (const tx of txs) {
          try {
            mempool.add(tx);
          } catch {
            // Already committed, a nonce race, or a full pool: the sender's node keeps trying.
          }
        }
      });
      consensus.onEvidence((e) => {
        if (isValidator()) node.reportEvidence(e);
      });
      await consensus.start();
      return node;
    } catch (err) {
      await host?.stop();
      if (store) await store.close();
      else await db.close();
      throw err;
    }
  }

  get state(): LedgerState {
    return this.chain.state;
  }

  /** The last committed height. */
  get height(): number {
    return this.chain.height;
  }

  get peerId(): string | undefined {
    return this.host?.peerId.toString();
  }

  /** Multiaddrs other nodes can dial. */
  addresses(): string[] {
    return this.host?.addresses().map(String) ?? [];
  }

  /**
   * Connects to a peer and keeps it: libp2p redials a peer tagged keep-alive when the connection
   * drops (its ping monitor closes a connection to a peer that stalled for a few seconds), so a
   * validator is not left out of consensus for good by one hiccup.
   */
  async dial(address: string): Promise<void> {
    if (!this.host) throw new NodeError("NO_NETWORK", "this node runs without a network");
    const peer = await this.host.dial(address);
    await this.host.libp2p.peerStore.merge(peer, { tags: { [KEEP_ALIVE]: { value: 1 } } });
  }

  /**
   * Submits a transaction: into the mempool (a MempoolError says why not) and, once there, to the
   * other nodes in the next gossip batch.
   */
  submit(tx: SignedTx): AddStatus {
    const status = this.mempool.add(tx);
    if (status !== "known") this.txGossip?.publish(tx);
    return status;
  }

  /** The nonce the next transaction of `sender` should carry, counting pooled ones. */
  nextNonce(sender: Uint8Array): bigint {
    return this.mempool.nextNonce(sender);
  }

  onCommit(listener: (block: CommittedBlock<SignedTx>) => void): () => void {
    return this.consensus.onCommit(listener);
  }

  /** Resolves once `height` is committed; rejects after `timeoutMs`. */
  waitForHeight(height: number, timeoutMs = 30_000): Promise<void> {
    if (this.height >= height) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(
          new NodeError("TIMEOUT", `height ${height} not reached in ${timeoutMs} ms`, {
            meta: { height, timeoutMs, at: this.height },
          }),
        );
      }, timeoutMs);
      const off = this.onCommit((c) => {
        if (c.height < height) return;
        clearTimeout(timer);
        off();
        resolve();
      });
    });
  }

  /** Turns double-signing this validator saw into an evidence transaction it signs and submits. */
  private reportEvidence(evidence: DuplicateVoteEvidence): void {
    const payload: TxPayload = {
      v: 1,
      type: "evidence",
      chainId: this.chain.genesis.chainId,
      nonce: this.nextNonce(this.publicKey),
      fee: this.chain.genesis.params.minFee,
      voteA: evidence.voteA as SignedVote,
      voteB: evidence.voteB as SignedVote,
    };
    try {
      this.submit({
        payload,
        signer: this.publicKey,
        signature: sign(this.secretKey, signingBytes(payload)),
      });
    } catch (err) {
      this.errors.push(err);
    }
  }

  /** Stops consensus, leaves the network and closes the store. Safe to call twice. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.consensus.stop();
      await this.consensus.idle();
      this.txGossip?.stop();
      await this.transport?.close();
      await this.host?.stop();
      await this.chain.store.close();
    })();
    return this.stopped;
  }
}

/** Starts a ledger node (see `NodeOptions`). */
export function startNode(options: NodeOptions): Promise<LedgerNode> {
  return LedgerNode.start(options);
}
