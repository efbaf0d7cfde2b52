/**
 * Transactions travel between nodes in batches on their own gossip topic: one gossip message (one
 * envelope signature, one message id, one validation) per few dozen milliseconds or per batch of
 * transactions, instead of one per transaction. The topic validator decodes a batch and checks
 * every signature (each once per node, through the SignatureCache, spread over the cores) before
 * the mempool sees it; one forged signature rejects the batch and penalises its relayer.
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
  onError?: ((err: unknown) => void) | undefined;
}

export class TxGossip {
  private readonly options: TxGossipOptions;
  private readonly decoded = new WeakMap<Uint8Array, SignedTx[]>();
  private queue: SignedTx[] = [];
  private queueBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private pending = 0;
  /** Batches published, received and shed, for tests and metrics. */
  readonly stats = { published: 0, received: 0, shed: 0 };

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
    this.queue = [];
    this.unsubscribe?.();
  }
}
