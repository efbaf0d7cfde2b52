/**
 * Transactions travel between nodes in batches on their own gossip topic: one gossip message (one
 * envelope signature, one message id, one validation) per few dozen milliseconds or per batch of
 * transactions, instead of one per transaction. The topic validator decodes a batch and checks
 * every signature (each once per node, through the SignatureCache, spread over the cores) before
 * the mempool sees it; one forged signature rejects the batch and penalises its relayer.
 *
 * Gossip is fire-and-forget: a batch published before the topic has peers (a node that just
 * started) reaches nobody. So pooled transactions still waiting after a while are published again,
 * each with a doubling back-off, a bounded number per interval, and only while the topic has peers;
 * a peer newly on the topic resets the back-off so that it gets the pending set soon. Receivers
 * drop what they hold already cheaply (known ids are not decoded, signatures are cached).
 */
import {
  array,
  bytes,
  DeepshardError,
  defineMessage,
  literal,
  MAX_TX_BYTES,
  PROTOCOL_VERSION,
  type SignedTx,
  struct,
  version,
} from "@deepshard/protocol";
import type { GossipVerdict, Host } from "@deepshard/protocol/host";
import type { PooledTx } from "../mempool/mempool.ts";
import type { SignatureCache } from "../mempool/signatures.ts";
import { txFromBytes, txInfo } from "../mempool/tx-info.ts";

export const MAX_TX_BATCH = 1024;
/** Gossipsub frames are limited to 4 MiB; a batch stays well below. */
export const MAX_TX_BATCH_BYTES = 1024 * 1024;

export const txBatchSchema = struct({
  v: version(PROTOCOL_VERSION),
  type: literal("txs"),
  /** Canonical transaction encodings: a receiver hashes them, and decodes only those it lacks. */
  txs: array(bytes({ max: MAX_TX_BYTES }), { max: MAX_TX_BATCH }),
});
export interface TxBatch {
  v: 1;
  type: "txs";
  txs: Uint8Array[];
}
export const txBatchCodec = defineMessage<TxBatch>(
  "txBatch",
  txBatchSchema,
  MAX_TX_BATCH_BYTES + MAX_TX_BYTES,
);

export class TxGossipError extends DeepshardError<"INVALID_SIGNATURE"> {
  override name = "TxGossipError";
}

export interface TxGossipOptions {
  host: Host;
  topic: string;
  signatures: SignatureCache;
  /** Transactions this node holds already, by id: not decoded again. */
  known?: ((id: string) => SignedTx | undefined) | undefined;
  /** A batch leaves at most this long after its first transaction. */
  flushIntervalMs?: number | undefined;
  /** A batch leaves at once when it holds this many transactions. */
  maxBatchTxs?: number | undefined;
  /**
   * Load shedding: while this many received transactions wait for their signature checks, further
   * batches are ignored (dropped here, not forwarded, nobody penalised), so that consensus messages
   * are not starved by transaction gossip at saturation. Their senders' nodes still propose them.
   */
  maxPendingTxs?: number | undefined;
  /** This node's pooled transactions, oldest first: those left waiting are gossiped again. */
  pooled?: (() => Iterable<PooledTx>) | undefined;
  resend?: TxResendOptions | undefined;
  /** The clock of `PooledTx.addedAt`. */
  now?: (() => number) | undefined;
  onError?: ((err: unknown) => void) | undefined;
}

export interface TxResendOptions {
  /** A pooled transaction is first gossiped again this long after it entered. Default 2000 ms. */
  afterMs?: number | undefined;
  /** How often the pool is looked at. Default 1000 ms. */
  intervalMs?: number | undefined;
  /** At most this many transactions gossiped again per interval. Default 256. */
  maxTxs?: number | undefined;
  /** The back-off between two re-sends of one transaction doubles up to this. Default 30 s. */
  maxBackoffMs?: number | undefined;
}

interface Backoff {
  /** Re-sends so far. */
  sends: number;
  /** When it is due again. */
  at: number;
}

export class TxGossip {
  private readonly options: TxGossipOptions;
  private readonly decoded = new WeakMap<Uint8Array, SignedTx[]>();
  private queue: SignedTx[] = [];
  private queueBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private pending = 0;
  private resendTimer: NodeJS.Timeout | undefined;
  private backoff = new Map<string, Backoff>();
  private topicPeers = new Set<string>();
  /** Batches published, received and shed, and transactions re-sent, for tests and metrics. */
  readonly stats = { published: 0, received: 0, shed: 0, resent: 0 };

  constructor(options: TxGossipOptions) {
    this.options = options;
  }

  /** Subscribes; `handler` gets the transactions of every valid batch from a peer. */
  start(handler: (txs: SignedTx[]) => void): void {
    this.unsubscribe = this.options.host.subscribe(
      this.options.topic,
      async (data): Promise<GossipVerdict> => {
        if (this.pending >= (this.options.maxPendingTxs ?? 8192)) {
          this.stats.shed++;
          return "ignore";
        }
        const txs = txBatchCodec.decode(data).txs.map((b) => txFromBytes(b, this.options.known));
        this.pending += txs.length;
        let valid: boolean[];
        try {
          valid = await this.options.signatures.verifyAll(txs);
        } finally {
          this.pending -= txs.length;
        }
        if (!valid.every(Boolean))
          throw new TxGossipError("INVALID_SIGNATURE", "a batched transaction is forged");
        this.decoded.set(data, txs);
        return "accept";
      },
      (data) => {
        const txs =
          this.decoded.get(data) ??
          txBatchCodec.decode(data).txs.map((b) => txFromBytes(b, this.options.known));
        this.stats.received++;
        handler(txs);
      },
    );
    if (this.options.pooled) {
      this.resendTimer = setInterval(() => this.resendWaiting(), this.options.resend?.intervalMs ?? 1000);
    }
  }

  /** Publishes again the pooled transactions that are due (see the module comment). */
  resendWaiting(): void {
    const pooled = this.options.pooled;
    if (!pooled) return;
    const peers = new Set(this.options.host.topicPeers(this.options.topic).map(String));
    if (peers.size === 0) return;
    if ([...peers].some((p) => !this.topicPeers.has(p))) this.backoff.clear();
    this.topicPeers = peers;
    const afterMs = this.options.resend?.afterMs ?? 2000;
    const maxTxs = this.options.resend?.maxTxs ?? 256;
    const maxBackoffMs = this.options.resend?.maxBackoffMs ?? 30_000;
    const now = (this.options.now ?? Date.now)();
    // Rebuilt on every pass, so that transactions which left the pool are forgotten.
    const backoff = new Map<string, Backoff>();
    let sent = 0;
    for (const { tx, id, addedAt } of pooled()) {
      const b = this.backoff.get(id);
      if (sent < maxTxs && (b?.at ?? addedAt + afterMs) <= now) {
        const sends = (b?.sends ?? 0) + 1;
        backoff.set(id, { sends, at: now + Math.min(afterMs * 2 ** sends, maxBackoffMs) });
        this.publish(tx);
        sent++;
      } else if (b) backoff.set(id, b);
    }
    this.backoff = backoff;
    this.stats.resent += sent;
    this.flush();
  }

  /** Queues a transaction for the next batch. */
  publish(tx: SignedTx): void {
    const { size } = txInfo(tx);
    if (this.queueBytes + size > MAX_TX_BATCH_BYTES) this.flush();
    this.queue.push(tx);
    this.queueBytes += size;
    if (this.queue.length >= (this.options.maxBatchTxs ?? 512)) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.options.flushIntervalMs ?? 50);
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.queue.length === 0) return;
    const batch: TxBatch = { v: 1, type: "txs", txs: this.queue.map((tx) => txInfo(tx).bytes) };
    this.queue = [];
    this.queueBytes = 0;
    let bytes: Uint8Array;
    try {
      bytes = txBatchCodec.encode(batch);
    } catch (err) {
      this.options.onError?.(err);
      return;
    }
    this.stats.published++;
    this.options.host.publish(this.options.topic, bytes).catch((err: unknown) => this.options.onError?.(err));
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    clearInterval(this.resendTimer);
    this.resendTimer = undefined;
    this.backoff.clear();
    this.queue = [];
    this.unsubscribe?.();
  }
}
