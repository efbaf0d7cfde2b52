/**
 * Transactions travel between nodes in batches on their own gossip topic: one gossip message (one
 * envelope signature, one message id, one validation) per few dozen milliseconds or per batch of
 * transactions, instead of one per transaction. The topic validator decodes a batch and checks
 * every signature (each once per node, through the SignatureCache, spread over the cores) before
 * the mempool sees it; one forged signature rejects the batch and penalises its relayer.
 */
import {
  array,
  DeepshardError,
  defineMessage,
  literal,
  MAX_TX_BYTES,
  PROTOCOL_VERSION,
  type SignedTx,
  signedTxSchema,
  struct,
  version,
} from "@deepshard/protocol";
import type { GossipVerdict, Host } from "@deepshard/protocol/host";
import type { SignatureCache } from "../mempool/signatures.ts";
import { txInfo } from "../mempool/tx-info.ts";

export const MAX_TX_BATCH = 1024;
/** Gossipsub frames are limited to 4 MiB; a batch stays well below. */
export const MAX_TX_BATCH_BYTES = 1024 * 1024;

export const txBatchSchema = struct({
  v: version(PROTOCOL_VERSION),
  type: literal("txs"),
  txs: array(signedTxSchema, { max: MAX_TX_BATCH }),
});
export interface TxBatch {
  v: 1;
  type: "txs";
  txs: SignedTx[];
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
  /** A batch leaves at most this long after its first transaction. */
  flushIntervalMs?: number | undefined;
  /** A batch leaves at once when it holds this many transactions. */
  maxBatchTxs?: number | undefined;
  onError?: ((err: unknown) => void) | undefined;
}

export class TxGossip {
  private readonly options: TxGossipOptions;
  private readonly decoded = new WeakMap<Uint8Array, SignedTx[]>();
  private queue: SignedTx[] = [];
  private queueBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  /** Batches published and received, for tests and metrics. */
  readonly stats = { published: 0, received: 0 };

  constructor(options: TxGossipOptions) {
    this.options = options;
  }

  /** Subscribes; `handler` gets the transactions of every valid batch from a peer. */
  start(handler: (txs: SignedTx[]) => void): void {
    this.unsubscribe = this.options.host.subscribe(
      this.options.topic,
      async (data): Promise<GossipVerdict> => {
        const { txs } = txBatchCodec.decode(data);
        const valid = await this.options.signatures.verifyAll(txs);
        if (!valid.every(Boolean))
          throw new TxGossipError("INVALID_SIGNATURE", "a batched transaction is forged");
        this.decoded.set(data, txs);
        return "accept";
      },
      (data) => {
        const txs = this.decoded.get(data) ?? txBatchCodec.decode(data).txs;
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
    if (this.queue.length >= (this.options.maxBatchTxs ?? 256)) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.options.flushIntervalMs ?? 25);
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.queue.length === 0) return;
    const batch: TxBatch = { v: 1, type: "txs", txs: this.queue };
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
